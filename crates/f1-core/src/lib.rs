//! `f1-core`: the model engine every phase of the pipeline stands on.
//!
//! It wraps libtorch (through `tch`) to load Llama-family models (Llama-2/3, Mistral,
//! TinyLlama, SmolLM2, Qwen2) from Hugging Face safetensors directories, GGUF files or the hub;
//! tokenizes with the model's own tokenizer; renders its chat template; generates text with a
//! KV cache; and scores continuations by log-likelihood. It offers components, never a CLI or
//! a training loop, and does no network I/O except the explicit hub download.
//!
//! ```no_run
//! use f1_core::{load_model, ModelOptions, GenerationConfig, ChatMessage};
//! let m = load_model("models/base/SmolLM2-135M-Instruct.Q4_1.gguf", &ModelOptions::auto(), None)?;
//! let prompt = m.chat_template.render(&[ChatMessage::user("What is the capital of France?")], true)?;
//! let out = f1_core::generate(&m.model, &m.tokenizer, &[prompt], &GenerationConfig::greedy(32), |_, _| {})?;
//! println!("{}", out[0].text);
//! # Ok::<(), f1_core::Error>(())
//! ```

pub mod chat;
pub mod config;
pub mod device;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod llama;
pub mod load;
pub mod lora;
pub mod loss;
pub mod nf4;
pub mod optim;
pub mod testing;
pub mod tokenizer;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Config, ModelOptions};
pub use device::CudaMemoryProbe;
pub use error::{Error, Result};
pub use generate::{generate, loglikelihood, loglikelihood_grouped, FinishReason, GenerationConfig, GenerationOutput, LogLikelihood, ScoreGroup};
pub use llama::{KvCache, Llama, WeightInit};
pub use load::{load_model, load_tokenizer, LoadedModel};
pub use tokenizer::Tokenizer;
