//! The report's conclusions, computed from the numbers: the paired comparisons of each variant
//! against the baseline said in plain words (McNemar's test decides significance at
//! [`ALPHA`], the paired bootstrap gives the interval), and the study's hypothesis — fine-tuning
//! on curated facts raises accuracy on questions about taught facts more than on control
//! questions whose facts were kept out of training — tested per variant and scoring mode on the
//! benchmark's taught and control subsets with the same paired statistics phase 4 uses.

use phase4_evaluation::compare::{compare, Comparison, ModeComparison};
use phase4_evaluation::mcq::{Breakdown, ItemResult};
use phase4_evaluation::run::EvalReport;

use super::format::{display, display_cap, p_value, pct, pts, ALPHA};
use super::inputs::VariantData;

/// Human name of a scoring mode (the names of phase 4's `mcq::MODES`).
pub fn mode_label(mode: &str) -> &str {
    match mode {
        "chat_acc" => "answer text, chat format (primary)",
        "chat_acc_norm" => "answer text, chat format, length-normalised",
        "acc" => "answer text, plain Question/Answer format",
        "acc_norm" => "answer text, plain Question/Answer format, length-normalised",
        "circular" => "letters, circular (right in every rotation)",
        "generative" => "letters, generative (strict answer extraction)",
        other => other,
    }
}

/// Short name of a scoring mode, for table cells.
pub fn mode_short(mode: &str) -> &str {
    match mode {
        "chat_acc" => "chat acc",
        "chat_acc_norm" => "chat acc_norm",
        "acc" => "plain acc",
        "acc_norm" => "plain acc_norm",
        "circular" => "circular",
        "generative" => "generative",
        other => other,
    }
}

/// The breakdown of `mode` in an evaluation, if that mode ran.
pub fn breakdown<'a>(r: &'a EvalReport, mode: &str) -> Option<&'a Breakdown> {
    match mode {
        "chat_acc" => r.mcq.chat.as_ref().map(|l| &l.acc),
        "chat_acc_norm" => r.mcq.chat.as_ref().map(|l| &l.acc_norm),
        "acc" => r.mcq.loglikelihood.as_ref().map(|l| &l.acc),
        "acc_norm" => r.mcq.loglikelihood.as_ref().map(|l| &l.acc_norm),
        "circular" => r.mcq.circular.as_ref().map(|c| &c.accuracy),
        "generative" => r.mcq.generative.as_ref().map(|g| &g.accuracy),
        _ => None,
    }
}

/// Whether a comparison's McNemar test is significant at [`ALPHA`].
pub fn significant(m: &ModeComparison) -> bool {
    m.mcnemar.p_value < ALPHA
}

/// One comparison in words, e.g. "LoRA beat the baseline by +6.2 points (95% CI +3.1 to +9.4),
/// McNemar p = 0.0004: significant at 5%."
pub fn significance_sentence(c: &Comparison, m: &ModeComparison) -> String {
    let (a, b) = (display(&c.a), display_cap(&c.b));
    let d = m.bootstrap.diff;
    let ci = format!("95% CI {} to {}", pts(m.bootstrap.ci95.0), pts(m.bootstrap.ci95.1));
    let p = format!("McNemar p {}", p_value(m.mcnemar.p_value));
    let head = if significant(m) && d > 0.0 {
        format!("{b} beat {a} by {} points ({ci}), {p}: significant at 5%.", pts(d))
    } else if significant(m) && d < 0.0 {
        format!("{b} fell behind {a} by {} points ({ci}), {p}: significant at 5%.", pts(d))
    } else {
        format!("{b} vs {a}: {} points ({ci}), {p}: no significant difference at 5%.", pts(d))
    };
    let detail = format!(
        " {} paired questions: {} right on {} that {} missed, {} right on {} that {} missed; {} to {}.",
        m.n,
        display_cap(&c.b),
        m.mcnemar.only_b,
        display(&c.a),
        display(&c.a),
        m.mcnemar.only_a,
        display(&c.b),
        pct(m.acc_a),
        pct(m.acc_b)
    );
    // When the two paired tests disagree the reader should know the result is borderline.
    let ci_excludes_zero = m.bootstrap.ci95.0 > 0.0 || m.bootstrap.ci95.1 < 0.0;
    let agree = if ci_excludes_zero == significant(m) {
        String::new()
    } else if ci_excludes_zero {
        " The bootstrap interval excludes zero although McNemar's test is not significant: a borderline result.".into()
    } else {
        " McNemar's test is significant although the bootstrap interval includes zero: a borderline result.".into()
    };
    format!("{head}{detail}{agree}")
}

/// How many of `comparisons`' mode tests stay significant under a Bonferroni correction, and
/// the corrected threshold.
pub fn bonferroni(comparisons: &[Comparison]) -> (usize, usize, f64) {
    let tests: Vec<&ModeComparison> = comparisons.iter().flat_map(|c| c.modes.iter()).collect();
    let k = tests.len().max(1);
    let threshold = ALPHA / k as f64;
    (tests.iter().filter(|m| m.mcnemar.p_value < threshold).count(), tests.len(), threshold)
}

/// The outcome of the hypothesis for one variant and mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Taught accuracy rose significantly, and by more than control accuracy.
    Supported,
    /// Taught rose more than control, but the taught gain is not significant.
    NotSignificant,
    /// Taught accuracy did not gain more than control accuracy.
    Contradicted,
    /// Direction only: no per-item results to test with.
    Untested,
}

/// Taught-vs-control gains of one variant over the baseline in one mode.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupGain {
    /// Variant.
    pub variant: String,
    /// Scoring mode.
    pub mode: String,
    /// Baseline and variant accuracy on taught questions, with the question count.
    pub taught: (f64, f64, usize),
    /// The same on control questions.
    pub control: (f64, f64, usize),
    /// McNemar p of the taught gain (paired, when per-item results exist).
    pub p_taught: Option<f64>,
    /// McNemar p of the control gain.
    pub p_control: Option<f64>,
    /// Verdict.
    pub verdict: Verdict,
}

impl GroupGain {
    /// Taught gain (variant minus baseline).
    pub fn d_taught(&self) -> f64 {
        self.taught.1 - self.taught.0
    }

    /// Control gain.
    pub fn d_control(&self) -> f64 {
        self.control.1 - self.control.0
    }

    /// The result in words.
    pub fn sentence(&self) -> String {
        let p = |x: Option<f64>| x.map(|p| format!(", McNemar p {}", p_value(p))).unwrap_or_default();
        let nums = format!(
            "{} ({}): taught questions {} → {} ({} points{}, n = {}), control questions {} → {} ({} points{}, n = {})",
            display_cap(&self.variant),
            mode_short(&self.mode),
            pct(self.taught.0),
            pct(self.taught.1),
            pts(self.d_taught()),
            p(self.p_taught),
            self.taught.2,
            pct(self.control.0),
            pct(self.control.1),
            pts(self.d_control()),
            p(self.p_control),
            self.control.2
        );
        let gap = pts(self.d_taught() - self.d_control());
        let why = match self.verdict {
            Verdict::Supported => format!("the taught gain is significant and exceeds the control gain by {gap} points: supports the hypothesis."),
            Verdict::NotSignificant => format!("taught questions gained {gap} points more than control ones, but the taught gain is not significant at 5%: not supported at this sample size."),
            Verdict::Contradicted => format!("taught questions did not gain more than control ones (difference {gap} points): contradicts the hypothesis."),
            Verdict::Untested => format!("taught minus control gain {gap} points; no per-item results, so direction only (untested)."),
        };
        format!("{nums}; {why}")
    }
}

fn subset(items: &[ItemResult], control: bool) -> Vec<ItemResult> {
    items.iter().filter(|r| r.control == Some(control)).cloned().collect()
}

/// Test the hypothesis for every fine-tuned variant against `baseline` in the chat-format,
/// plain-format and generative modes (those that ran). Per-item results give paired McNemar tests on each subset; without them
/// the accuracies of `by_control` give the direction only. Empty when the benchmark marks no
/// control questions.
pub fn hypothesis(baseline: &VariantData, variants: &[VariantData]) -> Vec<GroupGain> {
    let Some(base_eval) = &baseline.eval else { return vec![] };
    let (resamples, seed) = (base_eval.config.bootstrap_resamples.max(1), base_eval.config.seed);
    let mut out = vec![];
    for v in variants.iter().filter(|v| v.name != baseline.name) {
        let Some(eval) = &v.eval else { continue };
        for mode in ["chat_acc", "acc", "generative"] {
            let (Some(bb), Some(vb)) = (breakdown(base_eval, mode), breakdown(eval, mode)) else { continue };
            let get = |b: &Breakdown, k: &str| b.by_control.get(k).map(|a| (a.acc, a.n));
            let (Some(bt), Some(bc), Some(vt), Some(vc)) = (get(bb, "taught"), get(bb, "control"), get(vb, "taught"), get(vb, "control")) else { continue };
            let mut gain = GroupGain { variant: v.name.clone(), mode: mode.into(), taught: (bt.0, vt.0, vt.1), control: (bc.0, vc.0, vc.1), p_taught: None, p_control: None, verdict: Verdict::Untested };
            if let (Some(bi), Some(vi)) = (&baseline.items, &v.items) {
                let paired = |control: bool| -> Option<ModeComparison> {
                    let c = compare(&baseline.name, &subset(bi, control), &v.name, &subset(vi, control), resamples, seed).ok()?;
                    c.modes.into_iter().find(|m| m.mode == mode)
                };
                if let (Some(t), Some(c)) = (paired(false), paired(true)) {
                    // Paired accuracies over the items both variants answered.
                    gain.taught = (t.acc_a, t.acc_b, t.n);
                    gain.control = (c.acc_a, c.acc_b, c.n);
                    gain.p_taught = Some(t.mcnemar.p_value);
                    gain.p_control = Some(c.mcnemar.p_value);
                    gain.verdict = if gain.d_taught() <= gain.d_control() || gain.d_taught() <= 0.0 {
                        Verdict::Contradicted
                    } else if t.mcnemar.p_value < ALPHA {
                        Verdict::Supported
                    } else {
                        Verdict::NotSignificant
                    };
                }
            }
            if gain.verdict == Verdict::Untested && gain.d_taught() <= gain.d_control() {
                // Even without a test, a taught gain no larger than the control one contradicts.
                gain.verdict = Verdict::Contradicted;
            }
            out.push(gain);
        }
    }
    out
}

/// One sentence over all variants: how many support the hypothesis in some mode.
pub fn hypothesis_summary(gains: &[GroupGain]) -> String {
    let mut variants: Vec<&str> = gains.iter().map(|g| g.variant.as_str()).collect();
    variants.dedup();
    let supporting: Vec<String> = variants.iter().filter(|v| gains.iter().any(|g| g.variant == **v && g.verdict == Verdict::Supported)).map(|v| display(v)).collect();
    let contradicting: Vec<String> = variants.iter().filter(|v| gains.iter().filter(|g| g.variant == **v).all(|g| g.verdict == Verdict::Contradicted)).map(|v| display(v)).collect();
    let mut s = format!("{} of {} fine-tuned variants support the hypothesis in at least one scoring mode", supporting.len(), variants.len());
    if !supporting.is_empty() {
        s += &format!(" ({})", supporting.join(", "));
    }
    s.push('.');
    if !contradicting.is_empty() {
        s += &format!(" In every mode tested, the results of {} contradict it.", contradicting.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use phase4_evaluation::stats::{McNemar, PairedBootstrap};

    fn mode(diff: f64, p: f64) -> ModeComparison {
        ModeComparison {
            mode: "acc".into(),
            n: 100,
            acc_a: 0.4,
            acc_b: 0.4 + diff,
            mcnemar: McNemar { n: 100, both_correct: 30, only_a: 5, only_b: 15, both_wrong: 50, statistic: 5.0, p_value: p, exact: true },
            bootstrap: PairedBootstrap { diff, ci95: (diff - 0.03, diff + 0.03), p_value: p, resamples: 1000 },
        }
    }

    #[test]
    fn sentences_follow_the_test() {
        let c = Comparison { schema_version: phase4_evaluation::compare::COMPARISON_SCHEMA_VERSION, a: "baseline".into(), b: "lora".into(), modes: vec![], by_part: Default::default() };
        let s = significance_sentence(&c, &mode(0.062, 0.0004));
        assert!(s.starts_with("LoRA beat the baseline by +6.2 points (95% CI +3.2 to +9.2), McNemar p = 0.0004: significant at 5%."), "{s}");
        let s = significance_sentence(&c, &mode(0.01, 0.4));
        assert!(s.contains("LoRA vs the baseline: +1.0 points") && s.contains("no significant difference") && !s.contains("borderline"), "{s}");
        let s = significance_sentence(&c, &mode(0.05, 0.06));
        assert!(s.contains("no significant difference") && s.contains("borderline"), "{s}");
        let s = significance_sentence(&c, &mode(-0.05, 0.01));
        assert!(s.contains("fell behind the baseline by -5.0 points"), "{s}");
    }
}
