//! The report's content: every section, table, sentence and plot, built from the [`Inputs`].
//! Nothing here is written ahead of time: each sentence is chosen by the numbers it states
//! (a loss that fell or rose, a test that is or is not significant), and every number is read
//! from a phase's output. The plots are returned as [`Plot`]s for the caller to draw; their
//! [`Figure`] blocks are filled with the SVG afterwards. The lead section, what fine-tuning
//! taught per benchmark part, is composed in [`super::taught`].

use std::collections::BTreeSet;

use phase4_evaluation::compare::Comparison;
use phase4_evaluation::run::EvalReport;
use phase4_evaluation::variant::VariantKind;

use super::charts::{color, Bar, LineData, Plot, Series, PALETTE};
use super::doc::{b, c, t, Block, Document, Figure, Span, Table};
use super::findings::{self, breakdown, mode_label, mode_short, significance_sentence, GroupGain, Verdict};
use super::format::{self as f, display, display_cap, pct, pct_ci, pts, NONE};
use super::inputs::{Inputs, VariantData};
use super::taught;
use super::training::{observe, Observations, TrainingRun, FLAT_REL, OVERFIT_REL};

/// The document and the plots it shows (stem, plot), in order.
pub struct Composed {
    /// The report with empty figure bodies.
    pub doc: Document,
    /// The plots to draw.
    pub plots: Vec<(String, Plot)>,
}

/// Modes shown side by side in the accuracy plot (those that ran): the chat format first, the
/// primary column.
const MODES: [&str; 4] = ["chat_acc", "acc", "circular", "generative"];

/// Modes with a per-category plot.
const CATEGORY_MODES: [&str; 3] = ["chat_acc", "acc", "generative"];

/// A training run and, when it was evaluated, its variant.
fn run_for<'a>(v: &VariantData, runs: &'a [TrainingRun]) -> Option<&'a TrainingRun> {
    runs.iter().find(|r| r.name == v.name).or_else(|| {
        let p = v.path.as_ref()?;
        runs.iter().find(|r| r.summary.as_ref().and_then(|s| s.artifacts.as_ref()).is_some_and(|a| a.ends_with(p)) || p.parent().is_some_and(|d| r.dir.ends_with(d)))
    })
}

fn variant_for<'a>(run: &TrainingRun, variants: &'a [VariantData]) -> Option<&'a VariantData> {
    variants.iter().find(|v| run_for(v, std::slice::from_ref(run)).is_some())
}

pub(super) fn variant_color(inputs: &Inputs, name: &str) -> plotters::style::RGBColor {
    inputs.variants.iter().position(|v| v.name == name).map_or(PALETTE[0], color)
}

pub(super) fn run_color(inputs: &Inputs, i: usize, run: &TrainingRun) -> plotters::style::RGBColor {
    match variant_for(run, &inputs.variants) {
        Some(v) => variant_color(inputs, &v.name),
        // Unevaluated runs (sweeps) take colors after the variants'.
        None => color(inputs.variants.len() + i),
    }
}

pub(super) fn figure(doc: &mut Document, plots: &mut Vec<(String, Plot)>, stem: &str, plot: Plot, caption: String) {
    doc.blocks.push(Block::Figure(Figure { stem: stem.into(), svg: String::new(), caption, png: false }));
    plots.push((stem.into(), plot));
}

/// Build the report from `inputs`.
pub fn compose(inputs: &Inputs) -> Composed {
    let mut doc = Document { title: format!("Study report: fine-tuning a small model on curated {} knowledge", inputs.domain), blocks: vec![] };
    let mut plots = vec![];
    let evaluated: Vec<&VariantData> = inputs.variants.iter().filter(|v| v.eval.is_some()).collect();
    let baseline = inputs.variants.iter().find(|v| v.name == "baseline");
    let gains = baseline.map(|b| findings::hypothesis(b, &inputs.variants)).unwrap_or_default();

    overview(&mut doc, inputs, &evaluated);
    taught::section(&mut doc, &mut plots, inputs, &evaluated);
    hypothesis_section(&mut doc, inputs, &gains);
    results_section(&mut doc, &mut plots, inputs, &evaluated);
    significance_section(&mut doc, inputs);
    category_section(&mut doc, &mut plots, inputs, &evaluated);
    circular_section(&mut doc, &evaluated);
    latency_section(&mut doc, &mut plots, inputs, &evaluated);
    training_section(&mut doc, &mut plots, inputs);
    experiment_log(&mut doc, inputs, &gains);
    data_card_section(&mut doc, inputs);
    provenance_section(&mut doc, inputs);
    missing_section(&mut doc, inputs);
    Composed { doc, plots }
}

fn overview(doc: &mut Document, inputs: &Inputs, evaluated: &[&VariantData]) {
    let names: Vec<String> = evaluated.iter().map(|v| v.name.clone()).collect();
    let bench = evaluated.iter().find_map(|v| v.eval.as_ref()).map(|e| (e.benchmark.path.display().to_string(), e.benchmark.n, e.benchmark.sha256.clone()));
    let mut spans = vec![if names.is_empty() { t("No variant has evaluation results") } else { t(format!("{} variants evaluated: ", names.len())) }];
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            spans.push(t(", "));
        }
        spans.push(c(n));
    }
    spans.push(t(format!("; {} training runs found", inputs.runs.len())));
    if let Some((path, n, sha)) = bench {
        spans.push(t(format!("; benchmark {n} questions from ")));
        spans.push(c(path));
        spans.push(t(" (sha256 "));
        spans.push(c(sha));
        spans.push(t(")"));
    }
    spans.push(t(format!(". {} expected inputs were missing (listed at the end).", inputs.missing.len())));
    doc.p(spans);
}

fn hypothesis_section(doc: &mut Document, inputs: &Inputs, gains: &[GroupGain]) {
    doc.h(2, "Hypothesis");
    doc.p(vec![
        b("Hypothesis. "),
        t(format!("Fine-tuning a small base model on curated {} facts raises its accuracy", inputs.domain)),
        t(" on benchmark questions about the taught facts, and raises it more than on control questions whose facts were kept out of every training pair. The benchmark marks each question "),
        c("taught"),
        t(" or "),
        c("control"),
        t("; the test compares each variant's gain over the baseline on the two groups, paired per question (McNemar's test at 5%)."),
    ]);
    if gains.is_empty() {
        let why = if inputs.variants.iter().all(|v| v.eval.is_none()) {
            "no evaluation results were found"
        } else if inputs.variants.iter().find(|v| v.name == "baseline").and_then(|v| v.eval.as_ref()).is_none() {
            "the baseline has no evaluation results"
        } else {
            "the benchmark marks no taught and control questions (or no fine-tuned variant was evaluated)"
        };
        doc.p(vec![b("Result. "), t(format!("The hypothesis could not be tested: {why}."))]);
        return;
    }
    doc.p(vec![b("Result. "), t(findings::hypothesis_summary(gains))]);
    doc.list(gains.iter().map(|g| vec![t(g.sentence())]).collect());
    let mut table = Table::numeric(&["variant", "mode", "taught: baseline", "taught: variant", "taught gain (points)", "control: baseline", "control: variant", "control gain (points)", "verdict"]);
    for g in gains {
        let verdict = match g.verdict {
            Verdict::Supported => "supports",
            Verdict::NotSignificant => "not significant",
            Verdict::Contradicted => "contradicts",
            Verdict::Untested => "direction only",
        };
        table.row(vec![g.variant.clone(), mode_short(&g.mode).into(), pct(g.taught.0), pct(g.taught.1), pts(g.d_taught()), pct(g.control.0), pct(g.control.1), pts(g.d_control()), verdict.into()]);
    }
    doc.table(table);
}

fn acc_cell(r: &EvalReport, mode: &str) -> String {
    breakdown(r, mode).map_or_else(|| NONE.into(), |b| pct_ci(b.overall.acc, b.overall.ci95))
}

fn method_cell(v: &VariantData, run: Option<&TrainingRun>, eval: Option<&EvalReport>) -> String {
    let kind = match v.kind {
        Some(VariantKind::Base) => "base model".to_string(),
        Some(VariantKind::Lora) => "LoRA".into(),
        Some(VariantKind::LoraMerged) => "LoRA (merged)".into(),
        Some(VariantKind::Qlora) => "QLoRA".into(),
        Some(VariantKind::Full) => "full fine-tune".into(),
        None => run.and_then(TrainingRun::method).unwrap_or_else(|| NONE.into()),
    };
    let mut parts = vec![kind];
    if let Some(r) = run.and_then(|r| r.config.as_ref()).and_then(|c| c.get("lora.r")).filter(|_| run.and_then(TrainingRun::method).as_deref() != Some("full")) {
        parts.push(format!("r={r}"));
    }
    if let Some(s) = run.and_then(|r| r.summary.as_ref()) {
        if let (Some(before), Some(after)) = (s.base_weight_bytes, s.base_weight_bytes_nf4) {
            parts.push(format!("NF4 base {:.1} MB (from {:.1} MB)", after as f64 / 1e6, before as f64 / 1e6));
        }
    }
    if let Some(e) = eval {
        parts.push(format!("eval {}", e.runtime));
    }
    parts.join(", ")
}

fn results_section(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs, evaluated: &[&VariantData]) {
    doc.h(2, "Results");
    doc.text("One row per variant over the whole benchmark. Accuracy intervals are 95% percentile-bootstrap intervals over questions; generative accuracy counts Invalid replies (no extractable option) as wrong; chat acc scores the option text as the start of the assistant's reply (the primary mode), plain acc lm-evaluation-harness's Question/Answer format. Training columns come from phase 3's summary of the run behind the variant.");
    let mut table = Table::numeric(&[
        "variant",
        "method / precision",
        "trainable params (share)",
        "peak memory train / eval",
        "training time",
        "final train loss",
        "final val loss",
        "MCQ total",
        "correct",
        "incorrect",
        "invalid",
        "generative accuracy (95% CI)",
        "chat acc (95% CI)",
        "plain acc (95% CI)",
        "BLEU",
        "ROUGE-L",
        "judge mean (1-5)",
        "hallucination rate",
        "latency median / mean / p90 (ms)",
    ]);
    for v in &inputs.variants {
        let run = run_for(v, &inputs.runs);
        let summary = run.and_then(|r| r.summary.as_ref());
        let eval = v.eval.as_ref();
        let trainable = summary.and_then(|s| s.trainable_params.map(|p| (p, s.trainable_share))).map_or_else(|| NONE.into(), |(p, share)| format!("{} ({})", f::count(p), share.map_or_else(|| NONE.into(), |x| format!("{:.2}%", 100.0 * x))));
        let memory = format!("{} / {}", f::opt(summary.and_then(|s| s.peak_rss_mib), f::mib), f::opt(eval.and_then(|e| e.resources.peak_rss_mib), f::mib));
        let mut row = vec![
            v.name.clone(),
            method_cell(v, run, eval),
            trainable,
            memory,
            f::opt(summary.and_then(|s| s.train_seconds), f::duration),
            f::opt(run.and_then(TrainingRun::final_train_loss), f::loss),
            f::opt(run.and_then(TrainingRun::final_val_loss), f::loss),
        ];
        match eval {
            Some(e) => {
                let g = e.mcq.generative.as_ref();
                row.extend([
                    g.map_or_else(|| e.mcq.n.to_string(), |g| g.total.to_string()),
                    f::opt(g.map(|g| g.correct), |x| x.to_string()),
                    f::opt(g.map(|g| g.incorrect), |x| x.to_string()),
                    f::opt(g.map(|g| g.invalid), |x| x.to_string()),
                    acc_cell(e, "generative"),
                    acc_cell(e, "chat_acc"),
                    acc_cell(e, "acc"),
                    f::opt(e.open.as_ref().map(|o| o.metrics.bleu), |x| format!("{x:.2}")),
                    f::opt(e.open.as_ref().map(|o| o.metrics.rouge_l), |x| format!("{x:.3}")),
                    f::opt(e.open.as_ref().and_then(|o| o.judge.as_ref()).and_then(|j| j.mean_score), |x| format!("{x:.2}")),
                    f::opt(e.hallucination.as_ref(), |h| format!("{} ({}/{})", pct(h.hallucination_rate), h.n - h.declined, h.n)),
                    f::opt(e.latency.as_ref(), |l| format!("{} / {} / {}", f::ms(l.total_ms.median), f::ms(l.total_ms.mean), f::ms(l.total_ms.p90))),
                ]);
            }
            None => row.extend(std::iter::once("eval.json missing".to_string()).chain(std::iter::repeat_n(NONE.to_string(), 11))),
        }
        table.row(row);
    }
    doc.table(table);

    let with_mcq: Vec<&&VariantData> = evaluated.iter().filter(|v| v.eval.as_ref().is_some_and(|e| MODES.iter().any(|m| breakdown(e, m).is_some()))).collect();
    if !with_mcq.is_empty() {
        let series: Vec<Series<Vec<Option<Bar>>>> = MODES
            .iter()
            .enumerate()
            .filter(|(_, m)| with_mcq.iter().any(|v| v.eval.as_ref().and_then(|e| breakdown(e, m)).is_some()))
            .map(|(i, m)| Series {
                label: mode_short(m).into(),
                color: color(i + 1),
                data: with_mcq.iter().map(|v| v.eval.as_ref().and_then(|e| breakdown(e, m)).map(|b| Bar { value: b.overall.acc, ci: Some(b.overall.ci95) })).collect(),
            })
            .collect();
        let groups = with_mcq.iter().map(|v| v.name.clone()).collect();
        figure(doc, plots, "mcq_accuracy", Plot::Bars { title: "MCQ accuracy per variant (95% bootstrap CI)".into(), y_desc: "accuracy".into(), groups, series, percent: true }, "MCQ accuracy per variant in every mode that ran (chat-format and plain-format answer text, circular and generative letters), with 95% bootstrap intervals as error bars.".into());
    }
    let with_gen: Vec<(&str, [usize; 3])> = evaluated.iter().filter_map(|v| v.eval.as_ref().and_then(|e| e.mcq.generative.as_ref()).map(|g| (v.name.as_str(), [g.correct, g.incorrect, g.invalid]))).collect();
    if !with_gen.is_empty() {
        let layer = |label: &str, col, k: usize| Series { label: label.into(), color: col, data: with_gen.iter().map(|(_, c)| c[k] as f64).collect() };
        let layers = vec![layer("correct", PALETTE[3], 0), layer("incorrect", PALETTE[4], 1), layer("invalid", PALETTE[0], 2)];
        figure(doc, plots, "mcq_outcomes", Plot::Stacked { title: "Generative MCQ outcomes per variant".into(), y_desc: "questions".into(), groups: with_gen.iter().map(|(n, _)| n.to_string()).collect(), layers }, "Generative answers per variant: Correct, Incorrect (another option) and Invalid (no option could be extracted).".into());
    }
}

fn significance_section(doc: &mut Document, inputs: &Inputs) {
    doc.h(2, "Paired significance against the baseline");
    let Some(cmps) = &inputs.comparisons else {
        doc.text("Not available: results/comparison.json is missing (phase 4 writes it).");
        return;
    };
    if cmps.is_empty() {
        doc.text("results/comparison.json holds no comparisons.");
        return;
    }
    doc.text("Each fine-tuned variant against the baseline on the same questions: McNemar's test on the questions only one of the two got right decides significance at 5%; the interval is a paired bootstrap of the accuracy difference.");
    for cmp in cmps {
        doc.h(3, format!("{} vs {}", display_cap(&cmp.b), display(&cmp.a)));
        doc.list(cmp.modes.iter().map(|m| vec![b(format!("{}: ", mode_label(&m.mode))), t(significance_sentence(cmp, m))]).collect());
    }
    let (kept, k, threshold) = findings::bonferroni(cmps);
    let raw = cmps.iter().flat_map(|c| c.modes.iter()).filter(|m| findings::significant(m)).count();
    doc.text(format!("{raw} of {k} tests are significant at 5%; with a Bonferroni correction for {k} tests (threshold {threshold:.4}), {kept} remain significant."));
}

fn category_section(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs, evaluated: &[&VariantData]) {
    let mut any = false;
    for mode in CATEGORY_MODES {
        let cats: BTreeSet<String> = evaluated.iter().filter_map(|v| v.eval.as_ref().and_then(|e| breakdown(e, mode))).flat_map(|b| b.by_category.keys().cloned()).collect();
        if cats.is_empty() {
            continue;
        }
        if !any {
            doc.h(2, "Accuracy per category");
            any = true;
        }
        let cats: Vec<String> = cats.into_iter().collect();
        let series: Vec<Series<Vec<Option<Bar>>>> = evaluated
            .iter()
            .filter_map(|v| {
                let b = v.eval.as_ref().and_then(|e| breakdown(e, mode))?;
                Some(Series { label: v.name.clone(), color: variant_color(inputs, &v.name), data: cats.iter().map(|c| b.by_category.get(c).map(|a| Bar { value: a.acc, ci: Some(a.ci95) })).collect() })
            })
            .collect();
        let mut header = vec!["category".to_string(), "questions".to_string()];
        header.extend(series.iter().map(|s| s.label.clone()));
        let mut table = Table::numeric(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for c in &cats {
            let n = evaluated.iter().filter_map(|v| v.eval.as_ref().and_then(|e| breakdown(e, mode)).and_then(|b| b.by_category.get(c))).map(|a| a.n).max().unwrap_or(0);
            let mut row = vec![c.clone(), n.to_string()];
            row.extend(evaluated.iter().filter_map(|v| v.eval.as_ref().and_then(|e| breakdown(e, mode))).map(|b| b.by_category.get(c).map_or_else(|| NONE.into(), |a| pct(a.acc))));
            table.row(row);
        }
        doc.h(3, mode_label(mode).to_string());
        figure(doc, plots, &format!("category_accuracy_{mode}"), Plot::Bars { title: format!("{} per category", mode_short(mode)), y_desc: "accuracy".into(), groups: cats.clone(), series, percent: true }, format!("{} per benchmark category and variant, with 95% bootstrap intervals.", mode_label(mode)));
        doc.table(table);
    }
}

/// Per-position accuracy and the estimated letter prior of the circular mode, per variant.
fn circular_section(doc: &mut Document, evaluated: &[&VariantData]) {
    let with: Vec<(&str, &phase4_evaluation::circular::CircularReport)> = evaluated.iter().filter_map(|v| v.eval.as_ref()?.mcq.circular.as_ref().map(|c| (v.name.as_str(), c))).collect();
    if with.is_empty() {
        return;
    }
    doc.h(2, "Letters and position bias (circular)");
    doc.text("Each question asked once per rotation of its options, so the right answer sits under every letter once; a question counts only when every rotation is right. Right at X is the accuracy of the rotations with the answer under letter X (equal values mean no position bias); prior X is the model's mean probability of letter X over all rotated prompts (uniform means no preference for a letter).");
    let letters: Vec<String> = with.iter().flat_map(|(_, c)| c.by_position.keys().chain(c.letter_prior.keys()).cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut header = vec!["variant".to_string(), "circular acc (95% CI)".into(), "per-prompt acc".into()];
    header.extend(letters.iter().map(|l| format!("right at {l}")));
    header.extend(letters.iter().map(|l| format!("prior {l}")));
    let mut table = Table::numeric(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for (name, c) in with {
        let mut row = vec![name.to_string(), pct_ci(c.accuracy.overall.acc, c.accuracy.overall.ci95), pct(c.per_prompt_acc)];
        row.extend(letters.iter().map(|l| c.by_position.get(l).map_or_else(|| NONE.into(), |a| pct(a.acc))));
        row.extend(letters.iter().map(|l| c.letter_prior.get(l).map_or_else(|| NONE.into(), |p| pct(*p))));
        table.row(row);
    }
    doc.table(table);
}

fn latency_section(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs, evaluated: &[&VariantData]) {
    let with: Vec<&&VariantData> = evaluated.iter().filter(|v| v.latency.as_ref().is_some_and(|l| !l.is_empty())).collect();
    let summaries: Vec<&&VariantData> = evaluated.iter().filter(|v| v.eval.as_ref().is_some_and(|e| e.latency.is_some())).collect();
    if with.is_empty() && summaries.is_empty() {
        return;
    }
    doc.h(2, "Latency");
    doc.text("Single requests sent one at a time, as a user of the demo sends them (phase 4's latency probe); total is the whole request, TTFT the time to the first token.");
    let mut table = Table::numeric(&["variant", "requests", "total median (ms)", "total mean (ms)", "total p90 (ms)", "TTFT median (ms)", "output tokens/s (median)"]);
    for v in &summaries {
        if let Some(l) = v.eval.as_ref().and_then(|e| e.latency.as_ref()) {
            table.row(vec![v.name.clone(), l.total_ms.n.to_string(), f::ms(l.total_ms.median), f::ms(l.total_ms.mean), f::ms(l.total_ms.p90), f::ms(l.ttft_ms.median), format!("{:.1}", l.output_tokens_per_s.median)]);
        }
    }
    doc.table(table);
    if with.is_empty() {
        return;
    }
    let series: Vec<Series<Vec<f64>>> = with.iter().map(|v| Series { label: v.name.clone(), color: variant_color(inputs, &v.name), data: v.latency.iter().flatten().map(|s| s.total_ms).collect() }).collect();
    figure(doc, plots, "latency_histogram", Plot::Histogram { title: "Request latency per variant".into(), x_desc: "total request time (ms)".into(), series: series.clone() }, "Histogram of whole-request latency per variant (shared bins, variants side by side in each bin).".into());
    figure(doc, plots, "latency_box", Plot::Boxes { title: "Request latency per variant".into(), y_desc: "total request time (ms)".into(), series }, "Box plot of whole-request latency: box from the 25th to the 75th percentile, line at the median, whiskers at the minimum and maximum, cross at the mean.".into());
}

fn training_section(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs) {
    if inputs.runs.is_empty() {
        return;
    }
    doc.h(2, "Training");
    let mut table = Table::numeric(&["run", "method", "steps", "tokens", "time", "tokens/s", "peak memory", "first → last train loss", "best val loss (step)", "last val loss", "stopped early", "collapse flagged"]);
    for r in &inputs.runs {
        let o = observe(r);
        let s = r.summary.as_ref();
        table.row(vec![
            r.name.clone(),
            r.method().unwrap_or_else(|| NONE.into()),
            f::opt(s.and_then(|s| s.steps).or(r.train.last().map(|p| p.step)), |x| x.to_string()),
            f::opt(s.and_then(|s| s.tokens_seen), f::count),
            f::opt(s.and_then(|s| s.train_seconds), f::duration),
            f::opt(o.mean_tokens_per_s, |x| format!("{x:.0}")),
            f::opt(s.and_then(|s| s.peak_rss_mib), f::mib),
            match (o.start, o.end) {
                (Some((a, ..)), Some((e, ..))) => format!("{} → {}", f::loss(a), f::loss(e)),
                _ => NONE.into(),
            },
            f::opt(o.val_best, |(l, st)| format!("{} ({st})", f::loss(l))),
            f::opt(r.final_val_loss(), f::loss),
            f::opt(s.map(|s| s.stopped_early), |x| (if x { "yes" } else { "no" }).to_string()),
            if s.is_some_and(|s| s.collapse_flagged) || o.collapse_at.is_some() { "yes".into() } else { "no".into() },
        ]);
    }
    doc.table(table);
    let runs_with: Vec<(usize, &TrainingRun)> = inputs.runs.iter().enumerate().filter(|(_, r)| !r.train.is_empty() || !r.evals.is_empty()).collect();
    if !runs_with.is_empty() {
        let mut series = vec![];
        for (i, r) in &runs_with {
            let col = run_color(inputs, *i, r);
            if !r.train.is_empty() {
                series.push(Series { label: format!("{} train", r.name), color: col, data: LineData { points: r.train.iter().map(|p| (p.step as f64, p.loss)).collect(), markers: false, width: 1 } });
            }
            if !r.evals.is_empty() {
                series.push(Series { label: format!("{} val", r.name), color: col, data: LineData { points: r.evals.iter().map(|e| (e.step as f64, e.loss)).collect(), markers: true, width: 3 } });
            }
        }
        figure(doc, plots, "loss", Plot::Lines { title: "Training and validation loss per step".into(), x_desc: "optimizer step".into(), y_desc: "loss (mean token cross-entropy)".into(), series, x_ticks: None }, "Training loss per optimizer step (thin lines) and validation loss at each evaluation (thick lines with dots), per run. A red cross marks a non-finite loss.".into());
    }
    taught::probe(doc, plots, inputs);
    rank_sweep(doc, plots, inputs);
}

fn rank_sweep(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs) {
    let swept: Vec<(String, u64, &TrainingRun)> = inputs.runs.iter().filter_map(|r| r.sweep_rank().map(|(base, rank)| (base, rank, r))).collect();
    if swept.is_empty() {
        return;
    }
    doc.h(3, "LoRA rank sweep");
    let ranks: Vec<u64> = swept.iter().map(|(_, r, _)| *r).collect::<BTreeSet<_>>().into_iter().collect();
    let bases: Vec<String> = swept.iter().map(|(b, ..)| b.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let x = |rank: u64| ranks.iter().position(|r| *r == rank).unwrap_or(0) as f64;
    let mut series = vec![];
    for (i, base) in bases.iter().enumerate() {
        let of_base: Vec<&(String, u64, &TrainingRun)> = swept.iter().filter(|(b, ..)| b == base).collect();
        let mut val: Vec<(f64, f64)> = of_base.iter().filter_map(|(_, r, run)| run.final_val_loss().map(|l| (x(*r), l))).collect();
        let mut train: Vec<(f64, f64)> = of_base.iter().filter_map(|(_, r, run)| run.final_train_loss().map(|l| (x(*r), l))).collect();
        val.sort_by(|a, b| a.0.total_cmp(&b.0));
        train.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series { label: format!("{base} final val loss"), color: color(1 + 2 * i), data: LineData { points: val, markers: true, width: 2 } });
        series.push(Series { label: format!("{base} final train loss"), color: color(2 + 2 * i), data: LineData { points: train, markers: true, width: 2 } });
    }
    let ticks = ranks.iter().map(|r| (x(*r), format!("r={r}"))).collect();
    figure(doc, plots, "rank_sweep", Plot::Lines { title: "LoRA rank sweep: final losses per rank".into(), x_desc: "LoRA rank".into(), y_desc: "loss".into(), series, x_ticks: Some(ticks) }, "Final training and validation loss of each run of the rank sweep.".into());
    let mut table = Table::numeric(&["run", "rank", "trainable params", "final train loss", "final val loss", "best val loss", "chat acc", "plain acc", "generative accuracy"]);
    let mut sorted = swept.clone();
    sorted.sort_by_key(|(b, r, _)| (b.clone(), *r));
    for (_, rank, run) in sorted {
        let eval = variant_for(run, &inputs.variants).and_then(|v| v.eval.as_ref());
        table.row(vec![
            run.name.clone(),
            rank.to_string(),
            f::opt(run.summary.as_ref().and_then(|s| s.trainable_params), f::count),
            f::opt(run.final_train_loss(), f::loss),
            f::opt(run.final_val_loss(), f::loss),
            f::opt(observe(run).val_best.map(|v| v.0), f::loss),
            eval.map_or_else(|| "not evaluated".into(), |e| acc_cell(e, "chat_acc")),
            eval.map_or_else(|| "not evaluated".into(), |e| acc_cell(e, "acc")),
            eval.map_or_else(|| "not evaluated".into(), |e| acc_cell(e, "generative")),
        ]);
    }
    doc.table(table);
}

fn observations(run: &TrainingRun, o: &Observations) -> Vec<Vec<Span>> {
    let mut items = vec![];
    let s = run.summary.as_ref();
    let mut head = format!("{} optimizer steps logged", o.steps_logged);
    if let Some(secs) = s.and_then(|s| s.train_seconds) {
        head += &format!(" in {}", f::duration(secs));
    }
    if let Some(tok) = s.and_then(|s| s.tokens_seen) {
        head += &format!(", {} training tokens", f::count(tok));
    }
    if let Some(tps) = o.mean_tokens_per_s {
        head += &format!(", mean {tps:.0} tokens/s");
    }
    if let Some(m) = s.and_then(|s| s.peak_rss_mib) {
        head += &format!(", peak memory {}", f::mib(m));
    }
    items.push(vec![t(format!("{head}."))]);
    if let (Some((a, a0, a1)), Some((e, e0, e1))) = (o.start, o.end) {
        let window = |x: u64, y: u64| if x == y { format!("step {x}") } else { format!("mean of steps {x}–{y}") };
        let mut line = format!("Training loss went from {} ({}) to {} ({}), {}", f::loss(a), window(a0, a1), f::loss(e), window(e0, e1), f::rel_change(a, e));
        if let Some((m, st)) = o.min_train {
            line += &format!("; lowest {} at step {st}", f::loss(m));
        }
        line.push('.');
        items.push(vec![t(line)]);
    }
    if let Some(step) = o.non_finite_at {
        items.push(vec![b("Collapse: "), t(format!("the training loss became non-finite at step {step}."))]);
    }
    if o.flat {
        items.push(vec![b("Flat: "), t(format!("the training loss changed by less than {:.0}% from start to end: the run did not learn.", 100.0 * FLAT_REL))]);
    }
    if o.rose {
        items.push(vec![b("Diverged: "), t("the training loss ended higher than it started.")]);
    }
    match (o.val_first, o.val_best, o.val_last) {
        (Some((f0, s0)), Some((fb, sb)), Some((fl, sl))) => {
            let mut line = format!("Validation loss {} at step {s0}, best {} at step {sb}, last {} at step {sl}.", f::loss(f0), f::loss(fb), f::loss(fl));
            if o.overfit {
                let falling = matches!((o.start, o.end), (Some((a, ..)), Some((e, ..))) if e < a);
                line += &format!(" It ended {} above its best{}: over-fitting after step {sb} (threshold {:.0}%).", f::rel_change(fb, fl), if falling { " while the training loss kept falling" } else { "" }, 100.0 * OVERFIT_REL);
            } else if sl == sb {
                line += " The last evaluation was the best: no sign of over-fitting.";
            } else {
                line += &format!(" The last value stayed within {:.0}% of the best: no clear over-fitting.", 100.0 * OVERFIT_REL);
            }
            items.push(vec![t(line)]);
        }
        _ => items.push(vec![t("No validation evaluation was logged.")]),
    }
    if let Some((step, c)) = &o.collapse_at {
        items.push(vec![
            b("Mode collapse: "),
            t(format!(
                "the collapse detector flagged the samples at step {step} (distinct-2 {}, repetition rate {}, {} of {} samples copy the prompt).",
                f::opt(c.distinct_2, |x| format!("{x:.2}")),
                f::opt(c.repetition_rate, |x| format!("{x:.2}")),
                c.prompt_copies,
                c.samples
            )),
        ]);
    } else if s.is_some_and(|s| s.collapse_flagged) {
        items.push(vec![b("Mode collapse: "), t("the summary says an evaluation flagged collapse.")]);
    }
    if s.is_some_and(|s| s.stopped_early) {
        items.push(vec![t(format!("The run stopped early after {} steps (early stopping or collapse).", f::opt(s.and_then(|s| s.steps), |x| x.to_string())))]);
    }
    if let Some(p) = s.and_then(|s| s.resumed_from.as_ref()) {
        items.push(vec![t("Resumed from the checkpoint "), c(p.display().to_string()), t(".")]);
    }
    if let Some((g, st)) = o.max_grad_norm {
        items.push(vec![t(format!("Largest gradient norm {g:.2} at step {st}."))]);
    }
    items
}

fn learnings(run: &TrainingRun, o: &Observations, variant: Option<&VariantData>, inputs: &Inputs, gains: &[GroupGain]) -> Vec<Vec<Span>> {
    let mut items = vec![];
    let lr = run.config.as_ref().and_then(|c| c.get("train.lr")).map(str::to_string);
    if let Some(step) = o.non_finite_at {
        items.push(vec![t(format!("The loss became non-finite at step {step}{}: a lower learning rate or a check of the data is needed before the results mean anything.", lr.as_ref().map(|l| format!(" with lr {l}")).unwrap_or_default()))]);
    }
    if o.flat {
        items.push(vec![t(format!("The loss did not move{}: more steps or a higher learning rate are needed.", lr.as_ref().map(|l| format!(" at lr {l}")).unwrap_or_default()))]);
    }
    if o.overfit {
        if let (Some((_, best)), Some((_, last))) = (o.val_best, o.val_last) {
            items.push(vec![t(format!("Validation loss was best at step {best} of {last}; the {} steps after it only over-fit, so stopping there (or fewer epochs) would keep the better model.", last - best))]);
        }
    }
    if let Some((step, _)) = &o.collapse_at {
        items.push(vec![t(format!("Generations collapsed by step {step}: this method and data size do not give a usable model without changes (fewer steps, lower learning rate, or more data)."))]);
    }
    let Some(v) = variant else {
        items.push(vec![t("This run was not evaluated on the benchmark, so its effect on accuracy is unknown.")]);
        return items;
    };
    for g in gains.iter().filter(|g| g.variant == v.name) {
        let verdict = match g.verdict {
            Verdict::Supported => "supports the hypothesis",
            Verdict::NotSignificant => "points the hypothesis's way but is not significant",
            Verdict::Contradicted => "contradicts the hypothesis",
            Verdict::Untested => "gives the direction only",
        };
        items.push(vec![t(format!("Taught vs control ({}): {} vs {} points over the baseline — {verdict}.", mode_short(&g.mode), pts(g.d_taught()), pts(g.d_control())))]);
    }
    let cmp: Option<&Comparison> = inputs.comparisons.as_ref().and_then(|cs| cs.iter().find(|c| c.b == v.name && c.a == "baseline"));
    if let Some(cmp) = cmp {
        let better: Vec<&str> = cmp.modes.iter().filter(|m| findings::significant(m) && m.bootstrap.diff > 0.0).map(|m| mode_short(&m.mode)).collect();
        let worse: Vec<&str> = cmp.modes.iter().filter(|m| findings::significant(m) && m.bootstrap.diff < 0.0).map(|m| mode_short(&m.mode)).collect();
        let drop = match (o.start, o.end) {
            (Some((a, ..)), Some((e, ..))) if a > 0.0 => Some((e - a) / a),
            _ => None,
        };
        match (better.is_empty(), drop) {
            (true, Some(d)) if d < -0.1 => items.push(vec![t(format!("The training loss fell {:.0}% but no scoring mode beat the baseline significantly: a lower loss on the training pairs did not carry over to the benchmark questions.", -100.0 * d))]),
            (false, Some(d)) if d < 0.0 => items.push(vec![t(format!("The training loss fell {:.0}% and {} improved significantly over the baseline.", -100.0 * d, join_and(&better)))]),
            (false, _) => items.push(vec![t(format!("{} improved significantly over the baseline.", join_and(&better)))]),
            _ => {}
        }
        if !worse.is_empty() {
            items.push(vec![t(format!("{} got significantly worse than the baseline: the fine-tune cost general multiple-choice ability.", join_and(&worse)))]);
        }
    }
    let base_eval = inputs.variants.iter().find(|x| x.name == "baseline").and_then(|x| x.eval.as_ref());
    if let (Some(be), Some(ve)) = (base_eval, v.eval.as_ref()) {
        if let (Some(bg), Some(vg)) = (&be.mcq.generative, &ve.mcq.generative) {
            if bg.invalid != vg.invalid {
                items.push(vec![t(format!("Invalid generative answers went from {} to {} of {} questions: the fine-tune {} the answer format.", bg.invalid, vg.invalid, vg.total, if vg.invalid < bg.invalid { "taught" } else { "weakened" }))]);
            }
        }
        if let (Some(bh), Some(vh)) = (&be.hallucination, &ve.hallucination) {
            let d = vh.hallucination_rate - bh.hallucination_rate;
            items.push(vec![t(format!("Hallucination rate on unanswerable questions went from {} to {} ({} points): the fine-tune made the model {} to decline.", pct(bh.hallucination_rate), pct(vh.hallucination_rate), pts(d), if d > 0.0 { "less willing" } else if d < 0.0 { "more willing" } else { "neither more nor less willing" }))]);
        }
    }
    // Cost against the other evaluated runs.
    if let Some(s) = &run.summary {
        for other in inputs.runs.iter().filter(|r| r.name != run.name && variant_for(r, &inputs.variants).is_some()) {
            let Some(os) = &other.summary else { continue };
            let mut parts = vec![];
            if let (Some(a), Some(b)) = (s.peak_rss_mib, os.peak_rss_mib) {
                parts.push(format!("peak memory {} vs {} ({})", f::mib(a), f::mib(b), f::rel_change(b, a)));
            }
            if let (Some(a), Some(b)) = (s.train_seconds, os.train_seconds) {
                parts.push(format!("training time {} vs {} ({})", f::duration(a), f::duration(b), f::rel_change(b, a)));
            }
            if let (Some(a), Some(b)) = (s.trainable_params, os.trainable_params) {
                parts.push(format!("trainable parameters {} vs {}", f::count(a), f::count(b)));
            }
            if !parts.is_empty() {
                items.push(vec![t(format!("Against {}: {}.", other.name, parts.join("; ")))]);
            }
        }
    }
    items
}

fn experiment_log(doc: &mut Document, inputs: &Inputs, gains: &[GroupGain]) {
    if inputs.runs.is_empty() {
        return;
    }
    doc.h(2, "Experiment log");
    doc.text("One entry per training run, in the reference study's form: hypothesis, config, training observations, evaluation results, learnings. Every statement is computed from the run's metrics and the evaluation results.");
    let train_pairs = inputs.data_card.as_ref().and_then(|d| d.pairs_by_split.get("train").copied());
    for (k, run) in inputs.runs.iter().enumerate() {
        let o = observe(run);
        let variant = variant_for(run, &inputs.variants).filter(|v| v.eval.is_some());
        doc.h(3, format!("Experiment {}: {}", k + 1, run.name));

        let cfg = run.config.as_ref();
        let method = run.method().unwrap_or_else(|| "an unknown method".into());
        let mut how = match method.as_str() {
            "full" => "full-parameter fine-tuning".to_string(),
            "qlora" => "QLoRA (LoRA adapters on the NF4-quantized base)".into(),
            "lora" => "LoRA adapters on the frozen base".into(),
            m => m.to_string(),
        };
        if let Some(r) = cfg.and_then(|c| c.get("lora.r")).filter(|_| method != "full") {
            how += &format!(", rank {r}");
        }
        if let Some(lr) = cfg.and_then(|c| c.get("train.lr")) {
            how += &format!(", lr {lr}");
        }
        let data = match (train_pairs, cfg.and_then(|c| c.get("data.max_train_examples"))) {
            (Some(n), Some(cap)) => format!(" on the curated training pairs ({n} in the data card, capped at {cap})"),
            (Some(n), None) => format!(" on the {n} curated training pairs"),
            (None, Some(cap)) => format!(" on at most {cap} curated training pairs"),
            (None, None) => " on the curated training pairs".into(),
        };
        doc.p(vec![b("Hypothesis. "), t(format!("Training with {how}{data} lowers validation loss without collapse and raises benchmark accuracy on taught questions more than on control questions."))]);

        doc.p(vec![b("Config.")]);
        let mut cfg_items: Vec<Vec<Span>> = cfg.map(|rc| rc.settings.iter().map(|(k, v)| vec![c(k), t(format!(": {v}"))]).collect()).unwrap_or_default();
        if let Some(s) = &run.summary {
            if let Some(p) = s.trainable_params {
                cfg_items.push(vec![t(format!("trainable parameters: {}{}", f::count(p), s.trainable_share.map(|x| format!(" ({:.2}% of {})", 100.0 * x, f::opt(s.total_params, f::count))).unwrap_or_default()))]);
            }
        }
        if cfg_items.is_empty() {
            cfg_items.push(vec![t("no resolved_config.yaml in "), c(run.dir.display().to_string())]);
        }
        doc.list(cfg_items);

        doc.p(vec![b("Training observations.")]);
        doc.list(observations(run, &o));

        doc.p(vec![b("Eval results.")]);
        let mut ev = vec![];
        if let Some(fe) = run.summary.as_ref().and_then(|s| s.final_eval.as_ref()) {
            ev.push(vec![t(format!(
                "Final validation loss {}, perplexity {}, token accuracy {}.",
                f::opt(fe.loss, f::loss),
                f::opt(fe.perplexity, |x| format!("{x:.2}")),
                f::opt(fe.token_accuracy, pct)
            ))]);
        }
        match variant.and_then(|v| v.eval.as_ref().map(|e| (v, e))) {
            Some((v, e)) => {
                let mut line = format!("Benchmark ({} questions):", e.benchmark.n);
                let mut cols = vec![];
                if let Some(l) = &e.mcq.chat {
                    cols.push(format!(" chat acc {}, chat acc_norm {}", pct_ci(l.acc.overall.acc, l.acc.overall.ci95), pct(l.acc_norm.overall.acc)));
                }
                if let Some(l) = &e.mcq.loglikelihood {
                    cols.push(format!(" plain acc {}, plain acc_norm {}", pct_ci(l.acc.overall.acc, l.acc.overall.ci95), pct(l.acc_norm.overall.acc)));
                }
                if let Some(c) = &e.mcq.circular {
                    cols.push(format!(" circular {}", pct_ci(c.accuracy.overall.acc, c.accuracy.overall.ci95)));
                }
                line += &cols.join(";");
                if let Some(g) = &e.mcq.generative {
                    line += &format!("; generative {} correct, {} incorrect, {} invalid ({})", g.correct, g.incorrect, g.invalid, pct_ci(g.accuracy.overall.acc, g.accuracy.overall.ci95));
                }
                ev.push(vec![t(format!("{line}."))]);
                if let Some(cmp) = inputs.comparisons.as_ref().and_then(|cs| cs.iter().find(|c| c.b == v.name)) {
                    for m in &cmp.modes {
                        ev.push(vec![b(format!("{}: ", mode_short(&m.mode))), t(significance_sentence(cmp, m))]);
                    }
                }
                if let Some(op) = &e.open {
                    ev.push(vec![t(format!("Open questions ({}): exact match {}, token F1 {}, BLEU {:.2}, ROUGE-L {:.3}{}.", op.metrics.n, pct(op.metrics.exact_match), pct(op.metrics.token_f1), op.metrics.bleu, op.metrics.rouge_l, op.judge.as_ref().and_then(|j| j.mean_score).map(|s| format!(", judge mean {s:.2}")).unwrap_or_default()))]);
                }
                if let Some(h) = &e.hallucination {
                    ev.push(vec![t(format!("Hallucination rate {} ({} of {} unanswerable questions answered anyway).", pct(h.hallucination_rate), h.n - h.declined, h.n))]);
                }
            }
            None => ev.push(vec![t("Not evaluated on the benchmark: no evaluated variant maps to this run.")]),
        }
        doc.list(ev);
        let samples = run.summary.as_ref().and_then(|s| s.final_eval.as_ref()).map(|e| e.samples.clone()).filter(|s| !s.is_empty()).or_else(|| run.evals.last().map(|e| e.samples.clone())).unwrap_or_default();
        if !samples.is_empty() {
            let cut = |s: &str| if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s.to_string() };
            let text: Vec<String> = samples.iter().take(2).map(|(q, a)| format!("prompt: {}\nmodel:  {}", cut(q).replace('\n', " "), cut(a).replace('\n', " "))).collect();
            doc.p(vec![t("Sample outputs at the last evaluation:")]);
            doc.blocks.push(Block::Pre(text.join("\n\n")));
        }

        doc.p(vec![b("Learnings.")]);
        let l = learnings(run, &o, variant, inputs, gains);
        if l.is_empty() {
            doc.text("Nothing beyond the numbers above: no collapse, no over-fitting, no evaluation to compare.");
        } else {
            doc.list(l);
        }
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn counts_rows(table: &mut Table, what: &str, counts: &std::collections::BTreeMap<String, usize>) {
    for (k, v) in counts {
        table.row(vec![what.into(), k.clone(), v.to_string()]);
    }
}

fn data_card_section(doc: &mut Document, inputs: &Inputs) {
    doc.h(2, "Data card summary");
    let Some(card) = &inputs.data_card else {
        doc.text("Not available: data/curated/data_card.json is missing (phase 1 writes it).");
        return;
    };
    let mut intro = vec![t("From phase 1's data card")];
    if let Some(cmd) = &card.command {
        intro.push(t(" ("));
        intro.push(c(cmd));
        intro.push(t(")"));
    }
    if let Some(years) = card.config.as_ref().and_then(|c| c.get("years")).and_then(|y| y.as_array()) {
        let ys: Vec<String> = years.iter().map(|y| y.to_string()).collect();
        intro.push(t(format!("; facts from {}", ys.join(" to "))));
    }
    let pairs: usize = card.pairs_by_split.values().sum();
    let bench: usize = card.benchmark_by_category.values().sum();
    let rejects = card.rejects.len();
    intro.push(t(format!(": {pairs} instruction pairs, {bench} benchmark questions, {rejects} reject{} recorded with {} reason.", if rejects == 1 { "" } else { "s" }, if rejects == 1 { "its" } else { "their" })));
    doc.p(intro);
    if let Some(note) = &card.period_note {
        doc.p(vec![b("Period. "), t(note.clone())]);
    }
    let mut table = Table::numeric(&["count", "key", "n"]);
    counts_rows(&mut table, "pairs per split", &card.pairs_by_split);
    counts_rows(&mut table, "pairs per source", &card.pairs_by_source);
    counts_rows(&mut table, "pairs per category", &card.pairs_by_category);
    counts_rows(&mut table, "benchmark: taught / control", &card.benchmark_by_control);
    counts_rows(&mut table, "benchmark per category", &card.benchmark_by_category);
    counts_rows(&mut table, "benchmark per difficulty", &card.benchmark_by_difficulty);
    doc.table(table);
    if let Some(l) = &card.leakage {
        doc.p(vec![
            b("Leakage gate. "),
            t(format!(
                "{} benchmark questions checked against {} training questions: highest word 3-shingle similarity {:.3} (threshold {}), {} over the threshold; {} questions share a word 8-gram with the training text.",
                l.benchmark_questions,
                l.training_questions,
                l.max_similarity,
                l.threshold,
                l.leaks.len(),
                l.questions_with_shared_8gram
            )),
        ]);
    }
    let mut stages = Table::numeric(&["stage", "unit", "inputs", "outputs", "rejects"]);
    for s in &card.stages {
        stages.row(vec![s.name.clone(), s.unit.clone(), s.inputs.to_string(), s.outputs.to_string(), s.rejects.to_string()]);
    }
    doc.table(stages);
    let mut lic = Table::numeric(&["source", "license", "attribution / use"]);
    lic.align = vec![super::doc::Align::Left; 3];
    for l in &card.licenses {
        lic.row(vec![l.source.clone(), l.license.clone(), l.attribution.clone()]);
    }
    doc.table(lic);
    let mut outs = Table::numeric(&["curated file", "bytes", "sha256"]);
    for o in &card.outputs {
        outs.row(vec![o.path.clone(), o.bytes.to_string(), o.sha256.clone()]);
    }
    doc.table(outs);
}

fn provenance_section(doc: &mut Document, inputs: &Inputs) {
    doc.h(2, "Provenance");
    match &inputs.manifest {
        Some((path, m)) => {
            doc.p(vec![t("Run manifest "), c(path.display().to_string()), t(format!(" (version {}): per phase, the sha256 of every input and output as `cargo xtask run-all` recorded them.", f::opt(m.version, |v| v.to_string())))]);
            let mut table = Table::numeric(&["phase", "profile", "seconds", "role", "path", "sha256"]);
            table.align = vec![super::doc::Align::Left; 6];
            for (phase, p) in &m.phases {
                for (role, files) in [("input", &p.inputs), ("output", &p.outputs)] {
                    for (file, hash) in files {
                        table.row(vec![phase.clone(), p.profile.clone().unwrap_or_else(|| NONE.into()), f::opt(p.seconds, |s| format!("{s:.1}")), role.into(), file.clone(), hash.clone()]);
                    }
                }
            }
            doc.table(table);
        }
        None => doc.text("No run manifest (results/manifest.json is written by `cargo xtask run-all`)."),
    }
    let mut read: Vec<Vec<Span>> = vec![];
    for v in &inputs.variants {
        if let Some(e) = &v.eval {
            read.push(vec![c(v.name.clone()), t(format!(": {} ({}), finished at Unix time {}", e.model, e.runtime, e.finished_at))]);
        }
    }
    for r in &inputs.runs {
        read.push(vec![t("run "), c(r.name.clone()), t(": "), c(r.dir.display().to_string())]);
    }
    if !read.is_empty() {
        doc.p(vec![t("Inputs read:")]);
        doc.list(read);
    }
}

fn missing_section(doc: &mut Document, inputs: &Inputs) {
    doc.h(2, "Missing inputs");
    if inputs.missing.is_empty() {
        doc.text("None: every expected input was found.");
        return;
    }
    let mut table = Table::numeric(&["missing", "consequence", "written by"]);
    table.align = vec![super::doc::Align::Left; 3];
    for m in &inputs.missing {
        table.row(vec![m.path.display().to_string(), m.consequence.clone(), m.producer.clone()]);
    }
    doc.table(table);
}
