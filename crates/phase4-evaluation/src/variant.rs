//! A model variant as the study names it, and the one function that loads any of them: the
//! base model, a LoRA adapter on the base (PEFT directory), the same adapter merged into the
//! base, a QLoRA adapter on the NF4-quantized base (the way it was trained), or a full
//! fine-tune exported as a Hugging Face directory. Phase 2, phase 4 and the demo server all load
//! through here, so every variant is measured as it would be served.

use std::path::{Path, PathBuf};

use f1_core::{lora, load_model, LoadedModel, ModelOptions};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a variant's weights are put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    /// The pre-trained model as it is.
    Base,
    /// A LoRA adapter applied on the fly on the full-precision base.
    Lora,
    /// A LoRA adapter folded into the base weights.
    LoraMerged,
    /// A LoRA adapter on the NF4-quantized base.
    Qlora,
    /// A complete model directory (full-parameter fine-tune).
    Full,
}

/// One model to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name in results and reports (`baseline`, `lora`, ...).
    pub name: String,
    /// How to build it.
    pub kind: VariantKind,
    /// The adapter directory (`lora`, `lora_merged`, `qlora`) or model directory (`full`);
    /// unused for `base`.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl Variant {
    /// The base model variant named `baseline`.
    pub fn baseline() -> Self {
        Variant { name: "baseline".into(), kind: VariantKind::Base, path: None }
    }

    /// Load the variant on top of `base` (a GGUF file, HF directory or hub id).
    pub fn load(&self, base: &str, opts: &ModelOptions) -> Result<(LoadedModel, String)> {
        let need_path = || -> Result<&Path> {
            self.path.as_deref().ok_or_else(|| Error::Invalid(format!("variant `{}` ({:?}) needs a `path`", self.name, self.kind)))
        };
        let missing = |p: &Path, what: &str| Error::Invalid(format!("variant `{}`: {what} {} does not exist (hint: run phase 3 first: `cargo xtask run-all`)", self.name, p.display()));
        match self.kind {
            VariantKind::Base => Ok((load_model(base, opts, None)?, format!("base {base}"))),
            VariantKind::Full => {
                let dir = need_path()?;
                if !dir.join("config.json").exists() {
                    return Err(missing(dir, "model directory"));
                }
                Ok((load_model(&dir.to_string_lossy(), opts, None)?, format!("full fine-tune {}", dir.display())))
            }
            VariantKind::Lora | VariantKind::LoraMerged | VariantKind::Qlora => {
                let dir = need_path()?;
                if !dir.join("adapter_config.json").exists() {
                    return Err(missing(dir, "adapter directory"));
                }
                let mut loaded = load_model(base, opts, None)?;
                if self.kind == VariantKind::Qlora {
                    let (before, after) = lora::quantize_base(&mut loaded.model);
                    tracing::info!(variant = %self.name, "base quantized to NF4: {:.1} MB -> {:.1} MB", before as f64 / 1e6, after as f64 / 1e6);
                }
                // The model's layers hold their own references to the adapter tensors, so the
                // adapter's var store (only needed to train) can go.
                let (_adapter_vs, cfg) = lora::load(dir, &mut loaded.model)?;
                loaded.model.set_training(false);
                if self.kind == VariantKind::LoraMerged {
                    lora::merge(&mut loaded.model)?;
                }
                if self.kind == VariantKind::Qlora && !loaded.model.device().is_cuda() {
                    // Same numbers, several times faster decoding on CPU; on a GPU the NF4 base
                    // stays compact, as QLoRA intends.
                    let kind = loaded.model.dtype();
                    let bytes = lora::cache_dequantized_base(&mut loaded.model, kind);
                    tracing::info!(variant = %self.name, "NF4 base dequantized once for CPU inference ({:.1} MB)", bytes as f64 / 1e6);
                }
                let what = match self.kind {
                    VariantKind::Qlora => "QLoRA adapter (NF4 base)",
                    VariantKind::LoraMerged => "LoRA adapter merged",
                    _ => "LoRA adapter",
                };
                Ok((loaded, format!("{what} r={} {} on {base}", cfg.r, dir.display())))
            }
        }
    }
}
