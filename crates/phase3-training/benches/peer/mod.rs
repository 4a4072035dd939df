//! Side-by-side benchmark with Hugging Face (issue #8): every case runs on our phase code
//! paths and on transformers + PEFT (`hf_bench.py`, a child process in the project venv) on
//! the same weights, the same token ids, in fp32 with the same thread count. Repetitions
//! alternate ours / peer, after one warm-up each, so drift hits both sides alike; ratios are
//! the median of the per-pair ratios of time per unit of work (ours / peer: below 1 is faster).
//!
//! Also measured in the same run: the fp32 matmul peak (MFU: 4N FLOPs per token for LoRA and
//! QLoRA, 6N for full fine-tuning, 2N forward, plus attention; Kaplan et al. 2020, PaLM's MFU)
//! and the memory bandwidth of a large sum (decode ceiling: weight bytes read per token /
//! bandwidth). Peak RSS per case on each side is VmHWM after a reset (`/proc/self/clear_refs`).
//! Shared by `benches/peer.rs` (`cargo xtask bench`) and `tests/peer.rs`.

#[path = "../shared/peak.rs"]
mod peak;
mod ours;
mod prepare;
mod python;
mod report;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use f1_core::Config;
use phase3_training::config::{DataConfig, LoraSection, TrainSection};
use phase3_training::{Method, TrainConfig};
use serde::Serialize;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use ours::Ours;
pub use peak::{matmul_peak_gflops, median};
use prepare::{prepare, Prepared};
pub use python::check as check_python;
use report::{machine, pair_ratio, side, table, targets, utc_date_now, Report, Row};

/// One timed repetition on either side.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Wall seconds of the repetition.
    pub seconds: f64,
    /// Units of work done (tokens trained or generated, questions scored).
    pub work: f64,
    /// Time to the first generated token (decode).
    pub ttft_s: Option<f64>,
    /// Tokens that went through the model (training, MCQ), for MFU.
    pub tokens: Option<f64>,
}

/// Which models to measure.
#[derive(Debug, Clone, Serialize)]
pub enum ModelChoice {
    /// The style guide's tiny random config, written as a Hugging Face directory.
    Tiny,
    /// SmolLM2-135M from its GGUF (dequantized to fp32 on both sides).
    Gguf(PathBuf),
}

/// What a run measures.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Timed repetitions per case (after one warm-up).
    pub reps: usize,
    /// Smaller batches, fewer questions and tokens (a smoke run).
    pub quick: bool,
    /// Models, in order.
    pub models: Vec<ModelChoice>,
    /// The venv interpreter with torch, transformers, peft (and bitsandbytes).
    pub python: PathBuf,
    /// Where to write the JSON report.
    pub out: PathBuf,
}

/// Sizes of the work, fixed by the mode.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub train_examples: usize,
    pub max_seq_len: usize,
    pub lora: LoraSection,
    pub lr_adapters: f64,
    pub lr_full: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub mcq_questions: usize,
    pub mcq_questions_per_call: usize,
    pub peer_mcq_rows_per_batch: usize,
    pub decode_new_tokens: usize,
    pub decode_batches: Vec<usize>,
    pub threads: i32,
    pub reps: usize,
    pub warm_up: usize,
}

impl Settings {
    fn new(opts: &Options) -> Self {
        let t = TrainSection::default();
        Settings {
            train_examples: if opts.quick { 2 } else { 4 },
            max_seq_len: 256,
            lora: LoraSection::default(),
            lr_adapters: 2e-4,
            lr_full: 2e-5,
            weight_decay: t.weight_decay,
            max_grad_norm: t.max_grad_norm,
            mcq_questions: if opts.quick { 8 } else { 48 },
            mcq_questions_per_call: 16,
            peer_mcq_rows_per_batch: 16,
            decode_new_tokens: if opts.quick { 16 } else { 64 },
            decode_batches: vec![1, 8],
            threads: tch::get_num_threads(),
            reps: opts.reps,
            warm_up: 1,
        }
    }
}


/// Reset this process's peak-RSS mark (VmHWM) to its current RSS; false where unsupported.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}


/// Read bandwidth in GB/s: a sum over 256 MiB of fp32 (far beyond any cache), median of 5.
fn memory_bandwidth_gbs() -> f64 {
    let n = 64i64 << 20;
    let x = Tensor::ones([n], (Kind::Float, Device::Cpu));
    let _ = x.sum(Kind::Float).double_value(&[]);
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = x.sum(Kind::Float).double_value(&[]);
            t.elapsed().as_secs_f64()
        })
        .collect();
    (n * 4) as f64 / median(&times) / 1e9
}

/// Forward attention FLOPs per token at sequence length `seq` (QK^T and AV, causal half).
fn attention_flops(cfg: &Config, seq: f64) -> f64 {
    2.0 * cfg.num_hidden_layers as f64 * seq * cfg.hidden_size as f64
}

/// A case of the plan.
#[derive(Clone, Copy)]
enum Case {
    Train(Method, &'static str),
    Mcq,
    Decode(usize),
}

impl Case {
    fn name(self) -> String {
        match self {
            Case::Train(Method::Lora, _) => "train_lora".into(),
            Case::Train(Method::Qlora, "lora") => "train_qlora".into(),
            Case::Train(Method::Qlora, _) => "train_qlora_bnb".into(),
            Case::Train(Method::Full, _) => "train_full".into(),
            Case::Mcq => "mcq_loglikelihood".into(),
            Case::Decode(b) => format!("decode_b{b}"),
        }
    }

    fn peer_kind(self) -> &'static str {
        match self {
            Case::Train(Method::Qlora, "lora") => {
                "transformers + PEFT LoRA on the dequantized fp32 model"
            }
            Case::Train(_, "qlora_bnb") => {
                "transformers + bitsandbytes NF4 (double quant) + PEFT LoRA"
            }
            Case::Train(_, "full") => "transformers, full fine-tuning, torch AdamW",
            Case::Train(..) => "transformers + PEFT LoRA, fp32",
            Case::Mcq => "lm-eval-style loglikelihood: one padded row per option",
            Case::Decode(_) => "transformers generate, greedy",
        }
    }
}

/// Our side, set up for `case`.
fn our_case(case: Case, p: &Prepared, s: &Settings, work_dir: &Path) -> Result<Ours> {
    Ok(match case {
        Case::Train(method, _) => {
            let name = case.name();
            let cfg = TrainConfig {
                name: name.clone(),
                method,
                model: p.ours.clone(),
                output_dir: work_dir.join(&name),
                data: DataConfig {
                    train: p.train_files.0.clone(),
                    validation: p.train_files.1.clone(),
                    max_seq_len: s.max_seq_len,
                    max_train_examples: None,
                    max_eval_examples: Some(1),
                    packing: false,
                    ..Default::default()
                },
                lora: s.lora.clone(),
                train: TrainSection {
                    batch_size: s.train_examples,
                    grad_accum: 1,
                    max_steps: Some(2),
                    eval_every: 0,
                    save_every: 0,
                    sample_prompts: 0,
                    lr: if method == Method::Full {
                        s.lr_full
                    } else {
                        s.lr_adapters
                    },
                    device: "cpu".into(),
                    dtype: "f32".into(),
                    ..Default::default()
                },
                sweep: Default::default(),
            };
            Ours::Train {
                cfg,
                tokens_per_step: p.train_tokens,
            }
        }
        Case::Mcq => Ours::mcq(
            &p.ours,
            p.items.clone(),
            s.mcq_questions_per_call,
            p.our_mcq_tokens,
        )?,
        Case::Decode(b) => Ours::decode(&p.ours, p.prompt.clone(), b, s.decode_new_tokens)?,
    })
}

/// The peer's spec for `case`; decode generates as many tokens as our warm-up did (ours stops
/// at an EOS the random tiny model may emit; the peer is held to the same count).
fn peer_spec(case: Case, p: &Prepared, s: &Settings, our_warm_up: Option<&Sample>) -> Value {
    let base = json!({"model_dir": p.peer_dir, "threads": s.threads, "seed": 42});
    let mut spec = base;
    match case {
        Case::Train(method, peer_method) => {
            let l = &s.lora;
            let mut t = p.train_batch.clone();
            t["method"] = json!(peer_method);
            t["lora"] = json!({"r": l.r, "lora_alpha": l.lora_alpha, "lora_dropout": l.lora_dropout, "target_modules": l.target_modules, "use_rslora": l.use_rslora});
            t["lr"] = json!(if method == Method::Full {
                s.lr_full
            } else {
                s.lr_adapters
            });
            t["weight_decay"] = json!(s.weight_decay);
            t["max_grad_norm"] = json!(s.max_grad_norm);
            spec["kind"] = json!("train");
            spec["train"] = t;
        }
        Case::Mcq => {
            spec["kind"] = json!("mcq");
            spec["mcq"] = json!({"requests": p.mcq_requests, "batch_size": s.peer_mcq_rows_per_batch, "pad_token_id": p.pad});
        }
        Case::Decode(b) => {
            let per_row = our_warm_up
                .map_or(s.decode_new_tokens, |w| {
                    (w.work / b as f64).round() as usize
                })
                .max(1);
            spec["kind"] = json!("decode");
            spec["decode"] = json!({"prompt": p.prompt, "batch": b, "new_tokens": per_row, "pad_token_id": p.pad});
        }
    }
    spec
}

/// What both sides measured for one case.
struct Measured {
    ours: Vec<Sample>,
    ours_rss: Option<f64>,
    peer: Result<(Vec<Sample>, Option<f64>), String>,
}

fn measure(
    case: Case,
    p: &Prepared,
    s: &Settings,
    peer: &mut python::Peer,
    work_dir: &Path,
    label: &str,
) -> Result<Measured> {
    let rss_reset = reset_peak_rss();
    let mut ours = our_case(case, p, s, work_dir)?;
    let warm = if ours.needs_warm_up() {
        Some(ours.run()?)
    } else {
        None
    };
    let mut peer_ok = match peer.setup(&peer_spec(case, p, s, warm.as_ref()))? {
        Ok(_) => match peer.run()? {
            Ok(_) => Ok(vec![]),
            Err(e) => Err(e.0),
        },
        Err(e) => Err(e.0),
    };
    if let Err(e) = &peer_ok {
        tracing::warn!("{label}: the peer could not run this case: {e}");
    }
    let mut samples = vec![];
    for i in 0..s.reps {
        let o = ours.run()?;
        let line = format!("{label}: rep {}/{}: ours {:.3} s", i + 1, s.reps, o.seconds);
        samples.push(o);
        if let Ok(v) = &mut peer_ok {
            match peer.run()? {
                Ok(x) => {
                    tracing::info!("{line}, peer {:.3} s", x.seconds);
                    v.push(x);
                }
                Err(e) => peer_ok = Err(e.0),
            }
        } else {
            tracing::info!("{line}");
        }
    }
    let ours_rss = if rss_reset {
        f1_core::device::peak_rss_mib()
    } else {
        None
    };
    drop(ours);
    let peer_rss = peer.finish()?;
    Ok(Measured {
        ours: samples,
        ours_rss,
        peer: peer_ok.map(|v| (v, peer_rss)),
    })
}

/// Model FLOPs per unit of work of a side, for MFU (None where MFU does not apply).
fn flops_per_rep(case: Case, p: &Prepared, sample: &Sample) -> Option<f64> {
    let n = p.config.num_parameters() as f64;
    match case {
        Case::Train(method, _) => {
            let seq = p.train_tokens as f64 / p.train_rows as f64;
            let attn = attention_flops(&p.config, seq);
            let per_token = if method == Method::Full {
                6.0 * n + 3.0 * attn
            } else {
                4.0 * n + 3.0 * attn
            };
            Some(sample.work * per_token)
        }
        Case::Mcq => {
            let tokens = sample.tokens?;
            let seq = tokens / (p.items.len() as f64).max(1.0);
            Some(tokens * (2.0 * n + attention_flops(&p.config, seq)))
        }
        Case::Decode(_) => None,
    }
}

/// Run every case on every model; print the table and write the report.
pub fn run(opts: &Options) -> Result<Report> {
    if opts.reps == 0 {
        bail!("reps must be at least 1 (F1_BENCH_REPS)");
    }
    check_python(&opts.python).map_err(|e| {
        anyhow::anyhow!(
            "{e}\nhint: run `cargo xtask setup` (it installs the pinned transformers and peft)"
        )
    })?;
    let settings = Settings::new(opts);
    let started = Instant::now();
    let peak = matmul_peak_gflops();
    let bandwidth = memory_bandwidth_gbs();
    tracing::info!(
        "fp32 matmul peak {peak:.1} GFLOP/s, read bandwidth {bandwidth:.1} GB/s, {} threads",
        settings.threads
    );
    let mut peer = python::Peer::spawn(&opts.python)?;
    let versions = peer.hello()?;
    let work = tempfile::tempdir()?;
    let mut cases = vec![];
    let mut models = vec![];
    // Smallest footprint first: memory the allocator keeps from a case is reused by the next,
    // so each case's peak RSS is its own rather than its predecessor's leftovers.
    let plan = [
        Case::Decode(1),
        Case::Decode(8),
        Case::Mcq,
        Case::Train(Method::Lora, "lora"),
        Case::Train(Method::Qlora, "lora"),
        Case::Train(Method::Qlora, "qlora_bnb"),
        Case::Train(Method::Full, "full"),
    ];
    let total = plan.len() * opts.models.len();
    for (mi, choice) in opts.models.iter().enumerate() {
        let p = prepare(choice, &settings).with_context(|| format!("preparing {choice:?}"))?;
        let n = p.config.num_parameters();
        let weight_bytes = 4.0 * n as f64;
        models.push(json!({"name": p.name, "source": p.ours, "parameters": n, "weight_bytes_fp32": weight_bytes, "train_batch_tokens": p.train_tokens, "train_batch_rows": p.train_rows, "decode_prompt_tokens": p.prompt.len()}));
        for (ci, &case) in plan.iter().enumerate() {
            let label = format!(
                "[{}/{total}] {} {}",
                mi * plan.len() + ci + 1,
                p.name,
                case.name()
            );
            tracing::info!(
                "{label}: starting ({:.0} s elapsed)",
                started.elapsed().as_secs_f64()
            );
            let m = measure(case, &p, &settings, &mut peer, work.path(), &label)
                .with_context(|| label.clone())?;
            let ceiling = |b: usize| b as f64 * bandwidth * 1e9 / weight_bytes;
            let bw = match case {
                Case::Decode(b) => Some(ceiling(b)),
                _ => None,
            };
            let flops = |x: &Sample| flops_per_rep(case, &p, x);
            let ours = side(&m.ours, m.ours_rss, flops, peak, bw);
            let per_unit = |x: &Sample| Some(x.seconds / x.work);
            let (peer_side, peer_error, ratio) = match &m.peer {
                Ok((v, rss)) if !v.is_empty() => (
                    Some(side(v, *rss, flops, peak, bw)),
                    None,
                    pair_ratio(&m.ours, v, per_unit),
                ),
                Ok(_) => (None, Some("no repetition ran".to_string()), None),
                Err(e) => (None, Some(e.clone()), None),
            };
            let unit = match case {
                Case::Train(..) => "tokens/s",
                Case::Mcq => "questions/s",
                Case::Decode(_) => "tokens/s",
            };
            cases.push(Row {
                model: p.name.clone(),
                case: case.name(),
                unit: unit.into(),
                peer_kind: case.peer_kind().into(),
                ours,
                peer: peer_side,
                peer_error,
                ratio,
            });
            if let Case::Decode(1) = case {
                // Time to first token, from the same batch-1 repetitions; MFU of the prefill.
                let prompt = p.prompt.len() as f64;
                let prefill = prompt * (2.0 * n as f64 + attention_flops(&p.config, prompt));
                let as_ttft = |v: &[Sample]| {
                    v.iter()
                        .filter_map(|x| {
                            Some(Sample {
                                seconds: x.ttft_s?,
                                work: 1.0,
                                ttft_s: None,
                                tokens: None,
                            })
                        })
                        .collect::<Vec<_>>()
                };
                let ours_t = as_ttft(&m.ours);
                let mut ours = side(&ours_t, m.ours_rss, |_| Some(prefill), peak, None);
                ours.throughput = 1.0 / ours.median_s;
                let (peer_side, ratio) = match &m.peer {
                    Ok((v, rss)) if !as_ttft(v).is_empty() => {
                        let pt = as_ttft(v);
                        let mut s = side(&pt, *rss, |_| Some(prefill), peak, None);
                        s.throughput = 1.0 / s.median_s;
                        (Some(s), pair_ratio(&ours_t, &pt, |x| Some(x.seconds)))
                    }
                    _ => (None, None),
                };
                let peer_error = peer_side
                    .is_none()
                    .then(|| "no time to first token from the peer".to_string());
                cases.push(Row {
                    model: p.name.clone(),
                    case: "ttft".into(),
                    unit: "prompts/s (1 / TTFT)".into(),
                    peer_kind: "transformers generate, first token via a streamer".into(),
                    ours,
                    peer: peer_side,
                    peer_error,
                    ratio,
                });
            }
        }
    }
    drop(peer);
    let targets = targets(&cases);
    let report = Report {
        schema_version: 1,
        date_utc: utc_date_now(),
        machine: machine(settings.threads),
        versions: json!({"libtorch": f1_core::device::RuntimeInfo::collect().libtorch_version, "peer": versions}),
        settings: json!({"quick": opts.quick, "sizes": settings, "models": opts.models, "ratio": "median over alternating pairs of our time per unit of work / the peer's (below 1: we are faster)"}),
        calibration: json!({"matmul_peak_gflops": peak, "memory_read_bandwidth_gbs": bandwidth, "matmul": "fp32 1024x1024x1024, median of 5", "bandwidth": "sum over 256 MiB fp32, median of 5"}),
        models,
        cases,
        targets,
    };
    print!("{}", table(&report));
    if let Some(dir) = opts.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&opts.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", opts.out.display()))?;
    println!(
        "wrote {} ({:.0} s)",
        opts.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}
