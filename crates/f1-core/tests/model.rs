//! Hermetic CPU tests of the engine on tiny random models the tests write themselves: loading
//! from safetensors (single and sharded) and from a GGUF we write gives the same weights;
//! KV-cached decoding equals full recomputation; batched generation equals unbatched;
//! log-likelihood equals a hand computation; Qwen2 biases and Mistral's sliding window work.

mod common;

use common::*;
use f1_core::generate::{generate_ids, generate_ids_until, loglikelihood, GenerationConfig};
use f1_core::gguf::GgmlType;
use f1_core::{load_model, KvCache, ModelOptions};
use tch::{Device, Kind, Tensor};

fn ids(v: &[i64]) -> Tensor {
    Tensor::from_slice(v).view([1, v.len() as i64])
}

fn assert_same_weights(a: &tch::nn::VarStore, b: &tch::nn::VarStore, tol: f64) {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len(), "variable count");
    for (name, t) in &va {
        let d = max_abs_diff(t, &vb[name]);
        assert!(d <= tol, "{name}: max abs diff {d} > {tol}");
    }
}

#[test]
fn safetensors_single_and_sharded_load_identical_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let (vs, _) = random_model(&cfg, 1);
    for shards in [1, 3] {
        let path = dir.path().join(format!("m{shards}"));
        write_hf_dir(&path, &cfg, &vs, shards);
        let m = load_model(path.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load");
        assert_same_weights(&vs, &m.vs, 0.0);
        assert_eq!(m.model.config(), &cfg);
        // The chat template from tokenizer_config.json is the one in use.
        let text = m.chat_template.render(&[f1_core::ChatMessage { role: "user".into(), content: "hi".into() }], true).expect("render");
        assert_eq!(text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }
}

#[test]
fn gguf_we_write_loads_identical_weights_and_same_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let (vs, model) = random_model(&cfg, 2);
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, &cfg, &vs, GgmlType::F32);
    let m = load_model(path.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load gguf");
    assert_same_weights(&vs, &m.vs, 0.0);
    let c = m.model.config();
    assert_eq!((c.hidden_size, c.num_kv_heads(), c.vocab_size, c.tie_word_embeddings), (64, 2, 272, false));
    // Same logits, which also proves the Q/K permutation was undone.
    let x = ids(&[256, 10, 20, 30, 40]);
    assert!(max_abs_diff(&model.forward(&x, None, None), &m.model.forward(&x, None, None)) < 1e-5);
    // Tokenizer and template come from the metadata.
    assert_eq!(m.tokenizer.encode("<|im_start|>the", false).expect("encode")[0], 256);
    assert!(m.chat_template.render(&[f1_core::ChatMessage { role: "user".into(), content: "x".into() }], true).expect("render").ends_with("<|im_start|>assistant\n"));
}

#[test]
fn quantized_gguf_is_close_to_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let (vs, _) = random_model(&cfg, 3);
    for (ty, tol) in [(GgmlType::F16, 1e-3), (GgmlType::Q8_0, 0.01), (GgmlType::Q4_1, 0.1)] {
        let path = dir.path().join(format!("{}.gguf", ty.name()));
        write_gguf(&path, &cfg, &vs, ty);
        let m = load_model(path.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect("load");
        assert_same_weights(&vs, &m.vs, tol);
    }
}

#[test]
fn missing_and_misshaped_tensors_name_the_tensor_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let (vs, _) = random_model(&cfg, 4);
    write_hf_dir(dir.path(), &cfg, &vs, 1);
    // Drop one tensor.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight").collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&vars, dir.path().join("model.safetensors")).expect("write");
    let err = load_model(dir.path().to_str().expect("utf8"), &ModelOptions::cpu(), None).expect_err("missing").to_string();
    assert!(err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"), "{err}");
    // Give one tensor the wrong shape.
    for (n, t) in vars.iter_mut() {
        if n == "model.norm.weight" {
            *t = Tensor::ones([65], (Kind::Float, Device::Cpu));
        }
    }
    vars.push(("model.layers.1.mlp.up_proj.weight".into(), Tensor::zeros([128, 64], (Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&vars, dir.path().join("model.safetensors")).expect("write");
    let err = load_model(dir.path().to_str().expect("utf8"), &ModelOptions::cpu(), None).expect_err("shape").to_string();
    assert!(err.contains("model.norm.weight") && err.contains("[65]") && err.contains(&dir.path().display().to_string()), "{err}");
    // A corrupt weight file names the file.
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").expect("write");
    let err = load_model(dir.path().to_str().expect("utf8"), &ModelOptions::cpu(), None).expect_err("corrupt").to_string();
    assert!(err.contains("model.safetensors") && err.contains("not a valid safetensors"), "{err}");
}

#[test]
fn corrupt_gguf_sizes_are_errors_naming_the_file_before_any_weight_is_allocated() {
    use f1_core::gguf::GgufValue;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = tiny_config("llama");
    let (vs, _) = random_model(&cfg, 5);
    let load = |name: &str, edit: &dyn Fn(&mut f1_core::gguf::GgufWriter), keep: &dyn Fn(&str) -> bool| {
        let path = dir.path().join(name);
        let mut w = gguf_writer(&cfg, &vs, GgmlType::F32, keep);
        edit(&mut w);
        w.write(&path).expect("write");
        let err = load_model(path.to_str().expect("utf8"), &ModelOptions::cpu(), None).expect_err(name).to_string();
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
        err
    };
    let all = |_: &str| true;
    // No heads: a division by zero before.
    let err = load("heads0.gguf", &|w| w.add_metadata("llama.attention.head_count", GgufValue::U32(0)), &all);
    assert!(err.contains("num_attention_heads = 0"), "{err}");
    // A vocabulary of 4 billion beside a 272-row embedding: 1 TB asked of libtorch before.
    let err = load("vocab.gguf", &|w| w.add_metadata("llama.vocab_size", GgufValue::U32(u32::MAX)), &all);
    assert!(err.contains("vocab_size = 4294967295"), "{err}");
    // A plausible but wrong size is caught by the tensor it sizes, before allocation.
    let err = load("vocab2.gguf", &|w| w.add_metadata("llama.vocab_size", GgufValue::U32(100_000)), &all);
    assert!(err.contains("model.embed_tokens.weight") && err.contains("[272, 64]") && err.contains("[100000, 64]"), "{err}");
    let err = load("layers.gguf", &|w| w.add_metadata("llama.block_count", GgufValue::U32(1 << 30)), &all);
    assert!(err.contains("num_hidden_layers"), "{err}");
    // A Q projection of the wrong rank reached the Q/K un-permutation (a reshape) before.
    let err = load(
        "rank.gguf",
        &|w| w.add_tensor("blk.0.attn_q.weight", &[64 * 64], &vec![0.0; 64 * 64], GgmlType::F32).expect("add"),
        &|n: &str| n != "blk.0.attn_q.weight",
    );
    assert!(err.contains("model.layers.0.self_attn.q_proj.weight") && err.contains("[4096]"), "{err}");
    let err = load("missing.gguf", &|_| {}, &|n: &str| n != "blk.1.ffn_up.weight");
    assert!(err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"), "{err}");
}

#[test]
fn kv_cached_decoding_equals_full_recompute() {
    for model_type in ["llama", "qwen2"] {
        let cfg = tiny_config(model_type);
        let (_vs, model) = random_model(&cfg, 5);
        let seq: Vec<i64> = vec![256, 5, 99, 3, 42, 7, 180, 11, 64];
        let full = tch::no_grad(|| model.forward(&ids(&seq), None, None)); // (1, T, V)
        let mut cache = KvCache::new(&cfg, 1, 32, Device::Cpu, Kind::Float);
        let prefix = 5;
        let mut steps = vec![tch::no_grad(|| model.forward(&ids(&seq[..prefix]), None, Some(&mut cache)))];
        for (i, &t) in seq[prefix..].iter().enumerate() {
            let mask = Tensor::ones([1, (prefix + i + 1) as i64], (Kind::Int64, Device::Cpu));
            steps.push(tch::no_grad(|| model.forward(&ids(&[t]), Some(&mask), Some(&mut cache))));
        }
        let cached = Tensor::cat(&steps, 1);
        let d = max_abs_diff(&full, &cached);
        assert!(d < 1e-4, "{model_type}: cached vs full max abs diff {d}");
        assert_eq!(cache.len(), seq.len());
    }
}

#[test]
fn batched_generation_equals_unbatched() {
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 6);
    let tok = tiny_tokenizer();
    let prompts: Vec<Vec<u32>> = vec![vec![256, 40, 50, 60, 70, 80, 90], vec![256, 3], vec![256, 100, 101, 102]];
    let gen = GenerationConfig { max_new_tokens: 12, stop_token_ids: vec![], ..GenerationConfig::greedy(12) };
    let batched = generate_ids(&model, &tok, &prompts, &gen, |_, _| {}).expect("batched");
    for (i, p) in prompts.iter().enumerate() {
        let single = generate_ids(&model, &tok, std::slice::from_ref(p), &gen, |_, _| {}).expect("single");
        assert_eq!(batched[i].token_ids, single[0].token_ids, "prompt {i}");
        assert_eq!(batched[i].text, single[0].text, "prompt {i}");
    }
    // Sampling with a seed is reproducible and also batch-independent.
    let sample = GenerationConfig { temperature: 0.9, top_p: Some(0.95), seed: 11, ..gen.clone() };
    let a = generate_ids(&model, &tok, &prompts, &sample, |_, _| {}).expect("sample");
    let b = generate_ids(&model, &tok, &prompts[1..2], &sample, |_, _| {}).expect("sample");
    assert_eq!(a[1].token_ids, b[0].token_ids);
}

#[test]
fn streaming_concatenates_to_the_final_text_and_stops() {
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 7);
    let tok = tiny_tokenizer();
    let prompts = vec![vec![256u32, 1, 2, 3], vec![256u32, 9]];
    let mut streamed = vec![String::new(); 2];
    let gen = GenerationConfig::greedy(20);
    let out = generate_ids(&model, &tok, &prompts, &gen, |r, s| streamed[r].push_str(s)).expect("gen");
    for r in 0..2 {
        assert_eq!(streamed[r], out[r].text);
        assert_eq!(out[r].completion_tokens, out[r].token_ids.len() + usize::from(out[r].finish_reason == f1_core::FinishReason::Stop));
    }
    // Stopping on the first generated token of row 0 ends it with reason Stop and no text.
    let first = out[0].token_ids[0];
    let stop = GenerationConfig { stop_token_ids: vec![first], ..gen };
    let again = generate_ids(&model, &tok, &prompts[..1], &stop, |_, _| {}).expect("gen");
    assert_eq!(again[0].finish_reason, f1_core::FinishReason::Stop);
    assert!(again[0].token_ids.is_empty() && again[0].completion_tokens == 1);
}

#[test]
fn cancelling_ends_every_running_row_before_the_next_token() {
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 7);
    let tok = tiny_tokenizer();
    let prompts = vec![vec![256u32, 1, 2, 3], vec![256u32, 9]];
    let gen = GenerationConfig::greedy(20);
    let full = generate_ids(&model, &tok, &prompts, &gen, |_, _| {}).expect("gen");
    // Asked before each token: "yes" from the fourth question on leaves three tokens a row.
    let asked = std::cell::Cell::new(0);
    let cancelled = || {
        asked.set(asked.get() + 1);
        asked.get() > 3
    };
    let cut = generate_ids_until(&model, &tok, &prompts, &gen, |_, _| {}, cancelled).expect("gen");
    for r in 0..2 {
        let n = full[r].completion_tokens.min(3);
        assert_eq!(cut[r].completion_tokens, n, "row {r}");
        assert_eq!(cut[r].token_ids[..], full[r].token_ids[..cut[r].token_ids.len()], "row {r}: a prefix of the uncancelled run");
        let expected = if full[r].completion_tokens > 3 { f1_core::FinishReason::Cancelled } else { full[r].finish_reason };
        assert_eq!(cut[r].finish_reason, expected, "row {r}");
    }
    assert!(full.iter().any(|o| o.completion_tokens > 3), "the uncancelled run is longer than the cut: {full:?}");
    // Cancelled from the start: no token at all.
    let none = generate_ids_until(&model, &tok, &prompts[..1], &gen, |_, _| {}, || true).expect("gen");
    assert_eq!((none[0].completion_tokens, none[0].finish_reason), (0, f1_core::FinishReason::Cancelled));
}

#[test]
fn loglikelihood_matches_a_hand_computation_in_any_batch() {
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 8);
    let tok = tiny_tokenizer();
    let reqs: Vec<(Vec<u32>, Vec<u32>)> = vec![(vec![256, 10, 11], vec![12, 13]), (vec![256, 7], vec![8]), (vec![256, 1, 2, 3, 4, 5], vec![6, 7, 8])];
    let batched = loglikelihood(&model, &tok, &reqs, 8).expect("ll");
    let single: Vec<_> = reqs.iter().map(|r| loglikelihood(&model, &tok, std::slice::from_ref(r), 1).expect("ll")[0]).collect();
    for (i, (ctx, cont)) in reqs.iter().enumerate() {
        let seq: Vec<i64> = ctx.iter().chain(cont).map(|&t| t as i64).collect();
        let logp = tch::no_grad(|| model.forward(&ids(&seq), None, None)).log_softmax(-1, Kind::Float);
        let mut want = 0.0;
        let mut greedy = true;
        for (k, &t) in cont.iter().enumerate() {
            let pos = (ctx.len() + k - 1) as i64;
            let row = logp.get(0).get(pos);
            want += row.double_value(&[t as i64]);
            greedy &= row.argmax(0, false).int64_value(&[]) == t as i64;
        }
        assert!((batched[i].logprob - want).abs() < 1e-4, "request {i}: {} vs {want}", batched[i].logprob);
        assert!((single[i].logprob - want).abs() < 1e-4);
        assert_eq!(batched[i].is_greedy, greedy);
        assert_eq!(batched[i].n_tokens, cont.len());
    }
}

#[test]
fn grouped_scoring_equals_scoring_each_pair_alone() {
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 8);
    let tok = tiny_tokenizer();
    let groups = vec![
        f1_core::ScoreGroup { context: vec![256, 10, 11, 40], continuations: vec![vec![12, 13], vec![14], vec![15, 16, 17], vec![12, 18]] },
        f1_core::ScoreGroup { context: vec![256, 7], continuations: vec![vec![8], vec![9, 9]] },
        f1_core::ScoreGroup { context: vec![], continuations: vec![vec![3, 4, 5]] },
    ];
    // A budget of 20 tokens forces the groups into separate, differently padded batches.
    for budget in [20, 4096] {
        let grouped = f1_core::loglikelihood_grouped(&model, &tok, &groups, budget).expect("grouped");
        for (g, scores) in groups.iter().zip(&grouped) {
            assert_eq!(scores.len(), g.continuations.len());
            for (c, got) in g.continuations.iter().zip(scores) {
                let want = loglikelihood(&model, &tok, &[(g.context.clone(), c.clone())], 1).expect("ll")[0];
                assert!((got.logprob - want.logprob).abs() < 1e-4, "budget {budget}: {} vs {}", got.logprob, want.logprob);
                assert_eq!((got.is_greedy, got.n_tokens, got.greedy_tokens), (want.is_greedy, want.n_tokens, want.greedy_tokens));
            }
        }
    }
    let bad = [f1_core::ScoreGroup { context: vec![256], continuations: vec![vec![]] }];
    assert!(f1_core::loglikelihood_grouped(&model, &tok, &bad, 64).is_err());
}

#[test]
fn sliding_window_limits_what_a_one_layer_model_sees() {
    let mut cfg = tiny_config("mistral");
    cfg.num_hidden_layers = 1;
    cfg.sliding_window = Some(4);
    let (_vs, model) = random_model(&cfg, 9);
    let seq: Vec<i64> = vec![256, 5, 6, 7, 8, 9, 10, 11];
    let full = tch::no_grad(|| model.forward(&ids(&seq), None, None));
    // With a window of 4 the last position sees only the last 4 tokens; RoPE is relative, so
    // the same 4 tokens alone give the same last logits.
    let tail = tch::no_grad(|| model.forward(&ids(&seq[seq.len() - 4..]), None, None));
    let d = max_abs_diff(&full.get(0).get(-1), &tail.get(0).get(-1));
    assert!(d < 1e-4, "window: {d}");
    // Without the window the earlier tokens matter.
    cfg.sliding_window = None;
    let (_vs, model) = random_model(&cfg, 9);
    let full = tch::no_grad(|| model.forward(&ids(&seq), None, None));
    let tail = tch::no_grad(|| model.forward(&ids(&seq[seq.len() - 4..]), None, None));
    assert!(max_abs_diff(&full.get(0).get(-1), &tail.get(0).get(-1)) > 1e-3);
}

#[test]
fn packed_rows_give_the_same_loss_as_padded_rows() {
    use f1_core::loss::{masked_lm_loss, Layout, IGNORE};
    let cfg = tiny_config("llama");
    let (_vs, model) = random_model(&cfg, 10);
    let a: Vec<i64> = vec![256, 5, 6, 7, 258];
    let b: Vec<i64> = vec![256, 40, 41, 42, 43, 44, 258];
    let la: Vec<i64> = vec![IGNORE, IGNORE, 6, 7, 258];
    let lb: Vec<i64> = vec![IGNORE, IGNORE, IGNORE, 42, 43, 44, 258];
    // Padded: two rows, right-padded to 7.
    let pad = |v: &[i64], fill: i64| v.iter().copied().chain(std::iter::repeat(fill)).take(7).collect::<Vec<_>>();
    let ids = Tensor::from_slice(&[pad(&a, 0), pad(&b, 0)].concat()).view([2, 7]);
    let mask = Tensor::from_slice(&[pad(&[1; 5], 0), pad(&[1; 7], 0)].concat()).view([2, 7]);
    let labels = Tensor::from_slice(&[pad(&la, IGNORE), pad(&lb, IGNORE)].concat()).view([2, 7]);
    let padded = tch::no_grad(|| masked_lm_loss(&model, &ids, Layout::Padded(&mask), &labels));
    // Packed: one row of 12 with segments 1 and 2 and restarting positions.
    let ids = Tensor::from_slice(&[a.clone(), b.clone()].concat()).view([1, 12]);
    let seg = Tensor::from_slice(&[vec![1i64; 5], vec![2i64; 7]].concat()).view([1, 12]);
    let pos = Tensor::from_slice(&[(0..5).collect::<Vec<i64>>(), (0..7).collect()].concat()).view([1, 12]);
    let labels = Tensor::from_slice(&[la, lb].concat()).view([1, 12]);
    let packed = tch::no_grad(|| masked_lm_loss(&model, &ids, Layout::Packed(&seg, &pos), &labels));
    assert_eq!((padded.tokens, packed.tokens), (7, 7));
    let (x, y) = (padded.sum.double_value(&[]), packed.sum.double_value(&[]));
    assert!((x - y).abs() < 1e-4, "padded {x} vs packed {y}");
    // Without segments the second example would see the first: the loss changes.
    let leaky = tch::no_grad(|| model.forward_hidden(&ids, None, None));
    let sealed = tch::no_grad(|| model.forward_hidden_packed(&ids, &seg, &pos));
    assert!(max_abs_diff(&leaky.narrow(1, 5, 7), &sealed.narrow(1, 5, 7)) > 1e-3);
}
