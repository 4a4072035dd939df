//! How numbers are written in the report: one function per kind of quantity, so that a value
//! reads the same in every table, sentence and test (`46.1%`, `+6.2 points`, `p = 0.0004`).

/// Significance level of every test the report names.
pub const ALPHA: f64 = 0.05;

/// Dash for a value that does not exist (not trained, not measured).
pub const NONE: &str = "—";

/// A share as a percentage with one decimal: `0.4607` -> `46.1%`.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A share with its 95% interval: `46.1% (43.6–48.6)`.
pub fn pct_ci(x: f64, ci: (f64, f64)) -> String {
    format!("{} ({:.1}–{:.1})", pct(x), 100.0 * ci.0, 100.0 * ci.1)
}

/// A difference of shares in percentage points with its sign: `0.062` -> `+6.2`.
pub fn pts(d: f64) -> String {
    // `-0.0` would print as "-0.0"; a difference that rounds to nothing has no sign.
    let v = (1000.0 * d).round() / 10.0;
    if v == 0.0 {
        "±0.0".into()
    } else {
        format!("{v:+.1}")
    }
}

/// A 95% interval of a difference in points: `95% CI +7.5 to +30.0`.
pub fn ci_pts(ci: (f64, f64)) -> String {
    format!("95% CI {} to {}", pts(ci.0), pts(ci.1))
}

/// A p-value as it follows `p`: `= 0.0004`, `= 0.31`, `< 0.0001`.
pub fn p_value(p: f64) -> String {
    if p.is_nan() {
        "= n/a".into()
    } else if p < 1e-4 {
        "< 0.0001".into()
    } else if p < 0.1 {
        format!("= {p:.4}")
    } else {
        format!("= {p:.2}")
    }
}

/// A loss value.
pub fn loss(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        format!("{x}")
    }
}

/// An optional value through `f`, or [`NONE`].
pub fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map_or_else(|| NONE.to_string(), f)
}

/// Seconds as `12.3 s`, `4 min 05 s` or `2 h 03 min`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return format!("{s} s");
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let total = s.round() as u64;
    if total < 3600 {
        format!("{} min {:02} s", total / 60, total % 60)
    } else {
        format!("{} h {:02} min", total / 3600, (total % 3600) / 60)
    }
}

/// A count with a unit suffix: `921.6 K`, `134.5 M`, `1.24 B`; small counts as they are.
pub fn count(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.2} B", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1} K", x / 1e3)
    } else {
        n.to_string()
    }
}

/// Mebibytes, rounded.
pub fn mib(x: f64) -> String {
    format!("{x:.0} MiB")
}

/// Milliseconds, rounded.
pub fn ms(x: f64) -> String {
    format!("{x:.0}")
}

/// A relative change `from` -> `to` as a signed percentage: `-63.6%`.
pub fn rel_change(from: f64, to: f64) -> String {
    if from == 0.0 || !from.is_finite() || !to.is_finite() {
        return NONE.into();
    }
    format!("{:+.1}%", 100.0 * (to - from) / from.abs())
}

/// A display name for a variant or run: the study's three methods get their usual spelling,
/// anything else keeps its own name.
pub fn display(name: &str) -> String {
    match name {
        "baseline" => "the baseline".into(),
        "lora" => "LoRA".into(),
        "qlora" => "QLoRA".into(),
        "full" => "full fine-tuning".into(),
        "lora_merged" | "lora-merged" => "LoRA (merged)".into(),
        other => other.into(),
    }
}

/// [`display`] with the first letter capitalised, for the start of a sentence.
pub fn display_cap(name: &str) -> String {
    let d = display(name);
    let mut chars = d.chars();
    match chars.next() {
        Some(f) => f.to_uppercase().chain(chars).collect(),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_report_writes_them() {
        assert_eq!(pct(0.46066), "46.1%");
        assert_eq!(pct_ci(0.5, (0.4, 0.6)), "50.0% (40.0–60.0)");
        assert_eq!((pts(0.062), pts(-0.04), pts(0.0001)), ("+6.2".into(), "-4.0".into(), "±0.0".into()));
        assert_eq!((p_value(0.0004), p_value(0.31), p_value(1e-7)), ("= 0.0004".into(), "= 0.31".into(), "< 0.0001".into()));
        assert_eq!((duration(12.34), duration(245.0), duration(7380.0)), ("12.3 s".into(), "4 min 05 s".into(), "2 h 03 min".into()));
        assert_eq!((count(921_600), count(134_515_008), count(512)), ("921.6 K".into(), "134.52 M".into(), "512".into()));
        assert_eq!(rel_change(2.0, 1.0), "-50.0%");
        assert_eq!(display_cap("baseline"), "The baseline");
    }
}
