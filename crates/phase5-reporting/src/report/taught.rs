//! What fine-tuning taught: the report's lead section, read from phase 4's per-part results.
//!
//! The benchmark is split into parts (phase 1's fact injection, issue #13): `recall` asks about
//! each taught fact in words no training pair used (the headline), `control` asks the same
//! templates about facts no training pair states (a gain there is format learning, not
//! knowledge), `reasoning` compares, counts and orders taught facts. Each part is scored in
//! every mode; the primary one is the chat format (the option text as the start of the
//! assistant's reply), whose intervals are cluster bootstraps over facts and whose differences
//! to the baseline are paired per question (McNemar's test, `comparison.json`'s `by_part`).
//! This module turns those numbers into the per-part table, the free-answer table, one plain
//! sentence per variant whose wording is chosen by the sign and significance of the gains, and
//! the probe's table and curves (the same taught facts, measured during training). Everything
//! is read tolerantly: a study with one part (`all`), an older `eval.json` without parts or a
//! run without a probe gives dashes or no section, never an error.

use phase4_evaluation::compare::{Comparison, PartModeComparison};
use phase4_evaluation::mcq_report::PartReport;
use phase4_evaluation::run::EvalReport;

use super::charts::{Bar, LineData, Plot, Series};
use super::compose::{figure, run_color, variant_color};
use super::doc::{b, t, Document, Table};
use super::findings::{mode_label, mode_short};
use super::format::{ci_pts, display_cap, p_value, pct, pct_ci, pts, ALPHA, NONE};
use super::inputs::{Inputs, VariantData};

/// Parts in the order the report lists them; other parts (an imported study's `all`) follow.
pub const PART_ORDER: [&str; 3] = ["recall", "control", "reasoning"];

/// The mode the section reports: the chat format when any variant has it, else the plain one.
pub const PRIMARY: &str = "chat_acc";

/// The plain-format mode, shown beside the primary one.
pub const PLAIN: &str = "acc";

/// Every part of any evaluated variant, in [`PART_ORDER`] then by name.
pub fn parts(evaluated: &[&VariantData]) -> Vec<String> {
    let mut all: Vec<String> = evaluated.iter().filter_map(|v| v.eval.as_ref()).flat_map(|e| e.mcq.by_part.keys().cloned()).collect();
    all.sort_by_key(|p| (PART_ORDER.iter().position(|q| q == p).unwrap_or(PART_ORDER.len()), p.clone()));
    all.dedup();
    all
}

/// The mode the section's accuracies are in: [`PRIMARY`] when any part of any variant has it,
/// else [`PLAIN`] (an evaluation that ran without a chat template).
pub fn mode_of(evaluated: &[&VariantData]) -> &'static str {
    let has_chat = evaluated.iter().filter_map(|v| v.eval.as_ref()).any(|e| e.mcq.by_part.values().any(|p| p.modes.contains_key(PRIMARY)));
    if has_chat {
        PRIMARY
    } else {
        PLAIN
    }
}

/// What a part's questions are, for the section's introduction.
fn part_description(part: &str) -> &'static str {
    match part {
        "recall" => "one question per taught fact, worded differently from every training pair: the headline",
        "control" => "the same question templates on facts that no training pair states: a gain here is format learning, not knowledge",
        "reasoning" => "comparisons, counts and orderings over taught facts (secondary)",
        "all" => "every question of a benchmark that marks no parts",
        _ => "a part of the benchmark",
    }
}

/// One part's gain of a variant over the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct PartGain {
    /// Benchmark part.
    pub part: String,
    /// Baseline accuracy.
    pub base: f64,
    /// The variant's accuracy.
    pub variant: f64,
    /// Questions compared.
    pub n: usize,
    /// McNemar p of the paired comparison; `None` without per-item pairing (direction only).
    pub p: Option<f64>,
    /// 95% interval of the paired difference (cluster bootstrap over facts), when paired.
    pub ci95: Option<(f64, f64)>,
}

impl PartGain {
    /// Variant minus baseline.
    pub fn diff(&self) -> f64 {
        self.variant - self.base
    }

    /// The gain beyond `control`'s and its 95% interval: the two parts ask different facts,
    /// so their resampled differences are independent and the interval is the normal
    /// approximation with the two cluster-bootstrap intervals' standard errors combined.
    pub fn beyond(&self, control: &PartGain) -> (f64, Option<(f64, f64)>) {
        let d = self.diff() - control.diff();
        let se = |ci: (f64, f64)| (ci.1 - ci.0) / (2.0 * 1.96);
        let ci = self.ci95.zip(control.ci95).map(|(a, b)| {
            let half = 1.96 * (se(a).powi(2) + se(b).powi(2)).sqrt();
            (d - half, d + half)
        });
        (d, ci)
    }

    /// Whether the paired test is significant at [`ALPHA`].
    pub fn significant(&self) -> bool {
        self.p.is_some_and(|p| p < ALPHA)
    }

    /// The test result for a parenthesis: `McNemar p = 0.0004`, `n.s., McNemar p = 0.41` or
    /// `untested`.
    fn test(&self) -> String {
        match self.p {
            Some(p) if p < ALPHA => format!("McNemar p {}", p_value(p)),
            Some(p) => format!("n.s., McNemar p {}", p_value(p)),
            None => "not tested: no paired comparison".into(),
        }
    }
}

/// A part's comparison in `mode`, if the comparison has it.
fn part_cmp<'a>(c: &'a Comparison, part: &str, mode: &str) -> Option<&'a PartModeComparison> {
    c.by_part.get(part)?.modes.iter().find(|m| m.mode == mode)
}

/// A part's accuracy in `mode`, from an evaluation.
fn part_acc<'a>(e: &'a EvalReport, part: &str, mode: &str) -> Option<&'a phase4_evaluation::stats::Accuracy> {
    e.mcq.by_part.get(part)?.modes.get(mode)
}

/// The comparison of `variant` against the baseline, if phase 4 wrote one.
fn comparison_for<'a>(inputs: &'a Inputs, variant: &str) -> Option<&'a Comparison> {
    inputs.comparisons.as_ref()?.iter().find(|c| c.a == "baseline" && c.b == variant)
}

/// The gain of `v` over `baseline` on `part` in `mode`: paired from the comparison when it has
/// the part, else the two evaluations' accuracies without a test.
pub fn part_gain(cmp: Option<&Comparison>, baseline: Option<&EvalReport>, v: &EvalReport, part: &str, mode: &str) -> Option<PartGain> {
    if let Some(m) = cmp.and_then(|c| part_cmp(c, part, mode)) {
        return Some(PartGain { part: part.into(), base: m.acc_a, variant: m.acc_b, n: m.n, p: Some(m.mcnemar.p_value), ci95: Some(m.cluster_bootstrap.ci95) });
    }
    let (a, b) = (part_acc(baseline?, part, mode)?, part_acc(v, part, mode)?);
    Some(PartGain { part: part.into(), base: a.acc, variant: b.acc, n: b.n, p: None, ci95: None })
}

/// The headline part: `recall` when the benchmark has it, else its first part.
fn head_part(parts: &[String]) -> Option<&str> {
    parts.iter().find(|p| *p == "recall").or_else(|| parts.first()).map(String::as_str)
}

/// One plain sentence on what `variant` learned, from its gain on the headline part (`head`)
/// and, when the benchmark has one, on the control part. The wording follows the sizes of the
/// gains, not only their tests (40 control questions rarely reach significance): a significant
/// recall gain with control flat or down is fact learning; a control gain as large is format
/// learning; in between, the gain beyond control's is given with its interval and called fact
/// learning only when the interval excludes zero; a gain that is not significant or negative is
/// said to be so.
pub fn sentence(variant: &str, head: &PartGain, control: Option<&PartGain>) -> String {
    let (what, subject) = match head.part.as_str() {
        "recall" => ("recall questions on taught facts".to_string(), "the taught facts".to_string()),
        "all" => ("the benchmark's questions".to_string(), "the benchmark".to_string()),
        p => (format!("{p} questions"), format!("the {p} questions")),
    };
    let mut s = format!("{} answers {} of {what} against the baseline's {} ({} points, {})", display_cap(variant), pct(head.variant), pct(head.base), pts(head.diff()), head.test());
    if let Some(c) = control {
        s += &format!(", while control questions moved {} points ({})", pts(c.diff()), c.test());
    }
    let verdict = if head.p.is_none() {
        "direction only, since no paired test could be made.".to_string()
    } else if head.significant() && head.diff() > 0.0 {
        match control {
            None => format!("it gained on {subject}; no control part separates fact learning from format learning."),
            Some(c) if c.diff() <= 0.0 => "it learned the facts, not only the format: control questions, whose facts were never trained, did not rise.".into(),
            Some(c) => match head.beyond(c) {
                // Gains that print the same (to 0.1 points) are equal, not "more".
                (d, _) if d < 0.0005 => "the gain is format learning: control questions, whose facts were never trained, rose as much.".into(),
                (d, Some((lo, hi))) if lo > 0.0 => format!("part of the gain is format learning, since control questions rose too, but {subject} gained {} points more ({}): it learned facts.", pts(d), ci_pts((lo, hi))),
                (d, Some((lo, hi))) => format!(
                    "control questions, whose facts were never trained, rose too, so much of the gain is format learning (the answer form, a prior over likely winners); the gain beyond control's, {} points ({}), cannot be told from zero at this sample size.",
                    pts(d),
                    ci_pts((lo, hi))
                ),
                (d, None) => format!("part of the gain is format learning, since control questions rose too; {subject} gained {} points more (no interval).", pts(d)),
            },
        }
    } else if head.significant() {
        format!("it answers {subject} significantly worse than the base model.")
    } else if head.diff() > 0.0 {
        format!("the gain on {subject} is not significant at this sample size (n = {}).", head.n)
    } else {
        format!("it shows no gain on {subject}.")
    };
    format!("{s}: {verdict}")
}

/// A cell for an accuracy with its interval, or a dash.
fn acc_ci(a: Option<&phase4_evaluation::stats::Accuracy>) -> String {
    a.map_or_else(|| NONE.into(), |a| pct_ci(a.acc, a.ci95))
}

/// A p-value for a table cell (`0.0004`, `< 0.0001`).
fn p_cell(p: f64) -> String {
    p_value(p).trim_start_matches("= ").to_string()
}

/// The section: introduction, one sentence per fine-tuned variant, the per-part table, the free
/// answers' table and the per-part plot. Nothing when no variant was evaluated.
pub fn section(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs, evaluated: &[&VariantData]) {
    if evaluated.is_empty() {
        return;
    }
    doc.h(2, "What fine-tuning taught");
    let parts = parts(evaluated);
    let Some(head) = head_part(&parts) else {
        doc.text("Not available: the evaluation results carry no benchmark parts (an eval.json written before schema 2). Rerun phase 4 (`cargo xtask run-all --force phase4-evaluation`) to see recall, control and reasoning apart.");
        return;
    };
    let mode = mode_of(evaluated);
    doc.p(vec![
        t("Accuracy per benchmark part, scoring mode: "),
        b(mode_label(mode)),
        t(". Intervals are 95% cluster bootstraps over the facts the questions rest on; each fine-tuned variant is paired with the baseline question by question (McNemar's test at 5%, interval of the difference from a paired cluster bootstrap). The parts:"),
    ]);
    doc.list(parts.iter().map(|p| vec![b(format!("{p}: ")), t(format!("{}.", part_description(p)))]).collect());

    let baseline = inputs.variants.iter().find(|v| v.name == "baseline").and_then(|v| v.eval.as_ref());
    let has_control = parts.iter().any(|p| p == "control");
    let sentences: Vec<_> = evaluated
        .iter()
        .filter(|v| v.name != "baseline")
        .filter_map(|v| {
            let e = v.eval.as_ref()?;
            let cmp = comparison_for(inputs, &v.name);
            let h = part_gain(cmp, baseline, e, head, mode)?;
            let c = if has_control && head != "control" { part_gain(cmp, baseline, e, "control", mode) } else { None };
            Some(vec![t(sentence(&v.name, &h, c.as_ref()))])
        })
        .collect();
    if sentences.is_empty() && evaluated.iter().any(|v| v.name != "baseline") {
        doc.text("No fine-tuned variant could be set against the baseline: the baseline has no per-part results.");
    }
    doc.list(sentences);

    let mut table = Table::numeric(&["variant", "part", "questions (facts)", &format!("{} (95% CI)", mode_short(mode)), "vs baseline, points (95% CI)", "McNemar p", mode_short(PLAIN), mode_short("circular")]);
    for v in evaluated {
        let Some(e) = v.eval.as_ref() else { continue };
        let cmp = comparison_for(inputs, &v.name);
        for part in &parts {
            let Some(pr) = e.mcq.by_part.get(part) else { continue };
            let pc = cmp.and_then(|c| part_cmp(c, part, mode));
            let (diff, p) = match (pc, v.name == "baseline") {
                (_, true) => (NONE.to_string(), NONE.to_string()),
                (Some(m), false) => {
                    let cb = &m.cluster_bootstrap;
                    (format!("{} ({} to {})", pts(cb.diff), pts(cb.ci95.0), pts(cb.ci95.1)), p_cell(m.mcnemar.p_value))
                }
                (None, false) => (NONE.to_string(), NONE.to_string()),
            };
            let plain = |m: &str| pr.modes.get(m).map_or_else(|| NONE.into(), |a| pct(a.acc));
            table.row(vec![v.name.clone(), part.clone(), questions(pr), acc_ci(pr.modes.get(mode)), diff, p, plain(PLAIN), plain("circular")]);
        }
    }
    doc.table(table);

    free_answers(doc, evaluated);

    let series: Vec<Series<Vec<Option<Bar>>>> = evaluated
        .iter()
        .filter_map(|v| {
            let e = v.eval.as_ref()?;
            let data: Vec<Option<Bar>> = parts.iter().map(|p| part_acc(e, p, mode).map(|a| Bar { value: a.acc, ci: Some(a.ci95) })).collect();
            data.iter().any(Option::is_some).then(|| Series { label: v.name.clone(), color: variant_color(inputs, &v.name), data })
        })
        .collect();
    if !series.is_empty() {
        let title = format!("{} per benchmark part (95% cluster CI)", mode_short(mode));
        let caption = format!("Accuracy per benchmark part and variant (scoring mode: {}); whiskers are 95% cluster-bootstrap intervals over facts.", mode_label(mode));
        figure(doc, plots, "part_accuracy", Plot::Bars { title, y_desc: "accuracy".into(), groups: parts.clone(), series, percent: true }, caption);
    }
}

fn questions(pr: &PartReport) -> String {
    format!("{} ({})", pr.n, pr.clusters)
}

/// Open answers per part (`recall`: held-out wordings of taught facts, `unseen`: facts not
/// trained) and the hallucination rate on unanswerable questions, one row per variant.
fn free_answers(doc: &mut Document, evaluated: &[&VariantData]) {
    let mut open_parts: Vec<String> = evaluated.iter().filter_map(|v| v.eval.as_ref()?.open.as_ref()).flat_map(|o| o.by_part.keys().cloned()).collect();
    open_parts.sort_by_key(|p| (["recall", "unseen"].iter().position(|q| q == p).unwrap_or(2), p.clone()));
    open_parts.dedup();
    let any_hallucination = evaluated.iter().any(|v| v.eval.as_ref().is_some_and(|e| e.hallucination.is_some()));
    if open_parts.is_empty() && !any_hallucination {
        return;
    }
    let mut header = vec!["variant".to_string()];
    for p in &open_parts {
        header.push(format!("open {p}: token F1"));
        header.push(format!("open {p}: declined"));
    }
    header.push("hallucination rate".into());
    let mut table = Table::numeric(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for v in evaluated {
        let Some(e) = v.eval.as_ref() else { continue };
        let mut row = vec![v.name.clone()];
        for p in &open_parts {
            match e.open.as_ref().and_then(|o| o.by_part.get(p)) {
                Some(op) => row.extend([pct(op.token_f1), format!("{} ({}/{})", pct(op.declined_rate), op.declined, op.n)]),
                None => row.extend([NONE.to_string(), NONE.to_string()]),
            }
        }
        row.push(e.hallucination.as_ref().map_or_else(|| NONE.into(), |h| format!("{} ({}/{})", pct(h.hallucination_rate), h.n - h.declined, h.n)));
        table.row(row);
    }
    doc.p(vec![t("Free answers: token F1 and the share of answerable questions declined (over-refusal) per part of the open questions ("), b("recall"), t(": held-out wordings of taught facts; "), b("unseen"), t(": facts not trained), and the hallucination rate (unanswerable questions answered anyway).")]);
    doc.table(table);
}

/// The probe of each run in a table (base, best and its step, final, restored step) and its
/// curves in a plot; nothing when no run has a probe.
pub fn probe(doc: &mut Document, plots: &mut Vec<(String, Plot)>, inputs: &Inputs) {
    let with: Vec<(usize, &super::training::TrainingRun)> = inputs.runs.iter().enumerate().filter(|(_, r)| r.probe_summary().is_some()).collect();
    if with.is_empty() {
        return;
    }
    doc.h(3, "Probe during training");
    doc.text("The probe is a held-out set of paraphrased multiple-choice questions on the taught facts, scored in the chat format at step 0 (the base model) and at every evaluation; early stopping watches it when the run says so, and the best evaluation's weights are restored when `load_best_at_end` is set.");
    let mut table = Table::numeric(&["run", "early stopping watched", "probe questions", "base (step 0)", "best (step)", "final", "restored step"]);
    for (_, r) in &with {
        let Some(p) = r.probe_summary() else { continue };
        let opt_pct = |x: Option<f64>| x.filter(|x| x.is_finite()).map_or_else(|| NONE.into(), pct);
        table.row(vec![
            r.name.clone(),
            r.summary.as_ref().and_then(|s| s.early_stopping_metric.clone()).unwrap_or_else(|| NONE.into()),
            p.n.map_or_else(|| NONE.into(), |n| n.to_string()),
            opt_pct(p.initial_acc),
            match (p.best_acc, p.best_step) {
                (Some(a), Some(s)) => format!("{} (step {s})", pct(a)),
                (Some(a), None) => pct(a),
                _ => NONE.into(),
            },
            opt_pct(p.final_acc),
            p.restored_step.map_or_else(|| NONE.into(), |s| s.to_string()),
        ]);
    }
    doc.table(table);
    let series: Vec<Series<LineData>> = with
        .iter()
        .filter(|(_, r)| !r.probes.is_empty())
        .map(|(i, r)| Series { label: r.name.clone(), color: run_color(inputs, *i, r), data: LineData { points: r.probes.iter().map(|p| (p.step as f64, 100.0 * p.acc)).collect(), markers: true, width: 2 } })
        .collect();
    if !series.is_empty() {
        let caption = "Probe accuracy (chat format, in %) per optimizer step, one line per run; step 0 is the base model.".to_string();
        figure(doc, plots, "probe", Plot::Lines { title: "Probe accuracy during training".into(), x_desc: "optimizer step".into(), y_desc: "probe accuracy (%)".into(), series, x_ticks: None }, caption);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain(part: &str, base: f64, variant: f64, p: Option<f64>) -> PartGain {
        PartGain { part: part.into(), base, variant, n: 24, p, ci95: None }
    }

    fn gain_ci(part: &str, base: f64, variant: f64, p: f64, ci: (f64, f64)) -> PartGain {
        PartGain { ci95: Some(ci), ..gain(part, base, variant, Some(p)) }
    }

    #[test]
    fn the_sentence_follows_sign_and_significance() {
        let s = sentence("lora", &gain("recall", 0.45, 0.78, Some(0.0004)), Some(&gain("control", 0.3, 0.28, Some(0.8))));
        assert_eq!(s, "LoRA answers 78.0% of recall questions on taught facts against the baseline's 45.0% (+33.0 points, McNemar p = 0.0004), while control questions moved -2.0 points (n.s., McNemar p = 0.80): it learned the facts, not only the format: control questions, whose facts were never trained, did not rise.");
        let s = sentence("full", &gain("recall", 0.45, 0.5, Some(0.3)), Some(&gain("control", 0.3, 0.3, Some(1.0))));
        assert!(s.contains("(+5.0 points, n.s., McNemar p = 0.30)") && s.ends_with("not significant at this sample size (n = 24)."), "{s}");
        let s = sentence("qlora", &gain("recall", 0.45, 0.2, Some(0.001)), None);
        assert!(s.ends_with("it answers the taught facts significantly worse than the base model."), "{s}");
        let s = sentence("lora", &gain("recall", 0.4, 0.8, Some(0.001)), Some(&gain("control", 0.3, 0.7, Some(0.01))));
        assert!(s.ends_with("the gain is format learning: control questions, whose facts were never trained, rose as much."), "{s}");
        // A gain well beyond control's, both measured tightly: facts learned.
        let s = sentence("lora", &gain_ci("recall", 0.4, 0.9, 0.001, (0.4, 0.6)), Some(&gain_ci("control", 0.3, 0.5, 0.01, (0.1, 0.3))));
        assert!(s.ends_with("part of the gain is format learning, since control questions rose too, but the taught facts gained +30.0 points more (95% CI +15.9 to +44.1): it learned facts."), "{s}");
        // The study's 2026-12-03 LoRA: recall +19.2 (CI +7.5 to +30.0), control +15.0 (n.s. at
        // n = 40, CI -2.5 to +35.0): the 4.2 points beyond control are within chance.
        let s = sentence("lora", &gain_ci("recall", 0.417, 0.608, 0.003, (0.075, 0.30)), Some(&gain_ci("control", 0.375, 0.525, 0.21, (-0.025, 0.35))));
        assert!(s.contains("while control questions moved +15.0 points (n.s., McNemar p = 0.21)"), "{s}");
        assert!(s.ends_with("the gain beyond control's, +4.1 points (95% CI -17.8 to +26.0), cannot be told from zero at this sample size."), "{s}");
        let s = sentence("lora", &gain("all", 0.4, 0.38, None), None);
        assert!(s.starts_with("LoRA answers 38.0% of the benchmark's questions") && s.ends_with("direction only, since no paired test could be made."), "{s}");
        let s = sentence("lora", &gain("recall", 0.4, 0.38, Some(0.7)), None);
        assert!(s.ends_with("it shows no gain on the taught facts."), "{s}");
    }
}
