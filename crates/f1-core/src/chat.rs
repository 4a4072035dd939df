//! Chat templates: turning a conversation into the prompt text a chat model was trained on.
//!
//! A template is Jinja source, as Hugging Face ships it in `tokenizer_config.json`
//! (`chat_template`), `chat_template.jinja`, or GGUF `tokenizer.chat_template` metadata. It is
//! rendered with minijinja the way transformers' `apply_chat_template` renders it with Jinja2:
//! the variables `messages`, `add_generation_prompt`, `bos_token` and `eos_token`; the globals
//! `raise_exception(message)` and `strftime_now(format)`; a `tojson` filter writing JSON as
//! Python's `json.dumps` does; Python string and dict methods (`.strip()`, `.startswith()`,
//! `.items()`, ...) through minijinja-contrib's pycompat; `trim_blocks` and `lstrip_blocks` on,
//! and, as in Jinja2's default, a single trailing newline of the source dropped. Transformers'
//! `{% generation %}` markers (for assistant masks) are accepted and ignored.
//!
//! For models without a template, [`ChatTemplate::fallback`] offers ChatML, Llama-2, Llama-3,
//! Mistral and Alpaca formats, written here.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `"system"`, `"user"` or `"assistant"` (templates may accept others).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Where a chat template came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSource {
    /// The model's own template (Jinja source handed to [`ChatTemplate::new`]).
    Model,
    /// A built-in fallback format, by name (one of [`FALLBACK_TEMPLATES`]).
    Fallback(&'static str),
}

/// The names [`ChatTemplate::fallback`] knows.
pub const FALLBACK_TEMPLATES: &[&str] = &["chatml", "llama2", "llama3", "mistral", "alpaca"];

/// ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per message.
const CHATML: &str = r#"{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}"#;

/// Llama-2 chat: `<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s>`, the
/// system prompt folded into the first user turn, contents stripped.
const LLAMA2: &str = r#"{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}
{%- set loop_messages = messages[1:] if has_system else messages -%}
{%- for message in loop_messages -%}
{%- if message['role'] == 'user' -%}
{%- set system_part = '<<SYS>>\n' + messages[0]['content'] | trim + '\n<</SYS>>\n\n' if loop.first and has_system else '' -%}
{{- bos_token + '[INST] ' + system_part + message['content'] | trim + ' [/INST]' -}}
{%- elif message['role'] == 'assistant' -%}
{{- ' ' + message['content'] | trim + ' ' + eos_token -}}
{%- else -%}
{{- raise_exception('the llama2 format has the roles system (first message only), user and assistant, not ' + message['role']) -}}
{%- endif -%}
{%- endfor -%}"#;

/// Llama-3 instruct: `<|begin_of_text|>` then
/// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per message, contents stripped.
const LLAMA3: &str = r#"{{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}"#;

/// Mistral instruct: `<s>[INST] user [/INST] assistant</s>[INST] ...`; Mistral has no system
/// role, so a system prompt leads the first user turn, separated by a blank line.
const MISTRAL: &str = r#"{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}
{%- set loop_messages = messages[1:] if has_system else messages -%}
{{- bos_token -}}
{%- for message in loop_messages -%}
{%- if message['role'] == 'user' -%}
{%- set system_part = messages[0]['content'] + '\n\n' if loop.first and has_system else '' -%}
{{- '[INST] ' + system_part + message['content'] + ' [/INST]' -}}
{%- elif message['role'] == 'assistant' -%}
{{- ' ' + message['content'] + eos_token -}}
{%- else -%}
{{- raise_exception('the mistral format has the roles system (first message only), user and assistant, not ' + message['role']) -}}
{%- endif -%}
{%- endfor -%}"#;

/// Alpaca: a preamble (the system message, or Alpaca's own), then `### Instruction:\n...\n\n`
/// and `### Response:\n...` blocks.
const ALPACA: &str = r#"{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}
{%- set loop_messages = messages[1:] if has_system else messages -%}
{{- (messages[0]['content'] if has_system else 'Below is an instruction that describes a task. Write a response that appropriately completes the request.') + '\n\n' -}}
{%- for message in loop_messages -%}
{%- if message['role'] == 'user' -%}
{{- '### Instruction:\n' + message['content'] + '\n\n' -}}
{%- elif message['role'] == 'assistant' -%}
{{- '### Response:\n' + message['content'] + eos_token + '\n\n' -}}
{%- else -%}
{{- raise_exception('the alpaca format has the roles system (first message only), user and assistant, not ' + message['role']) -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '### Response:\n' -}}
{%- endif -%}"#;

/// A fallback's source and the BOS/EOS strings it uses when the caller gives none.
fn fallback_source(name: &str) -> Option<(&'static str, &'static str, Option<&'static str>, Option<&'static str>)> {
    Some(match name {
        "chatml" => ("chatml", CHATML, None, None),
        "llama2" => ("llama2", LLAMA2, Some("<s>"), Some("</s>")),
        "llama3" => ("llama3", LLAMA3, Some("<|begin_of_text|>"), Some("<|eot_id|>")),
        "mistral" => ("mistral", MISTRAL, Some("<s>"), Some("</s>")),
        "alpaca" => ("alpaca", ALPACA, Some(""), Some("")),
        _ => return None,
    })
}

/// The name the template is stored under in its environment (no extension: no auto-escaping).
const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    name: String,
    source: TemplateSource,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile Jinja `source` (a Hugging Face `chat_template`). `name` labels it in errors;
    /// `bos_token`/`eos_token` are the strings the template sees (undefined when `None`).
    pub fn new(source: &str, name: &str, bos_token: Option<&str>, eos_token: Option<&str>) -> Result<Self> {
        Self::compile(source, name, TemplateSource::Model, bos_token, eos_token)
    }

    /// A built-in format: one of [`FALLBACK_TEMPLATES`]. Without `bos`/`eos`, the format's usual
    /// tokens are used (`<s>`/`</s>` for Llama-2 and Mistral, `<|begin_of_text|>` for Llama-3).
    pub fn fallback(name: &str, bos: Option<&str>, eos: Option<&str>) -> Result<Self> {
        let (key, source, default_bos, default_eos) = fallback_source(name).ok_or_else(|| Error::ChatTemplate {
            name: name.to_string(),
            reason: format!("no built-in template of that name; known: {}", FALLBACK_TEMPLATES.join(", ")),
        })?;
        Self::compile(source, key, TemplateSource::Fallback(key), bos.or(default_bos), eos.or(default_eos))
    }

    fn compile(
        source: &str,
        name: &str,
        kind: TemplateSource,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        let source = strip_generation_tags(source);
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| Error::ChatTemplate { name: name.to_string(), reason: describe(&e) })?;
        Ok(Self {
            env,
            name: name.to_string(),
            source: kind,
            bos_token: bos_token.map(str::to_string),
            eos_token: eos_token.map(str::to_string),
        })
    }

    /// The template's name (`"model"` or whatever [`new`](Self::new) was given, or the fallback's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the model's template or a built-in one.
    pub fn source(&self) -> TemplateSource {
        self.source
    }

    /// Render a conversation. `add_generation_prompt` appends the header that opens the
    /// assistant's turn, for generation.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let err = |reason: String| Error::ChatTemplate { name: self.name.clone(), reason };
        let template = self.env.get_template(TEMPLATE_NAME).map_err(|e| err(describe(&e)))?;
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("messages", Value::from_serialize(messages));
        ctx.insert("add_generation_prompt", Value::from(add_generation_prompt));
        if let Some(bos) = &self.bos_token {
            ctx.insert("bos_token", Value::from(bos.as_str()));
        }
        if let Some(eos) = &self.eos_token {
            ctx.insert("eos_token", Value::from(eos.as_str()));
        }
        template.render(Value::from_serialize(&ctx)).map_err(|e| err(describe(&e)))
    }
}

/// A minijinja error with its causes, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// `raise_exception(message)`: templates call it to reject a conversation.
fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// Remove transformers' `{% generation %}` / `{% endgeneration %}` markers, which only tell
/// transformers where assistant text is and which Jinja itself does not know.
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else { break };
        let tag = &rest[start..start + len + 2];
        let inner = tag[2..tag.len() - 2].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if inner != "generation" && inner != "endgeneration" {
            out.push_str(tag);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// `strftime_now(format)`: the current time (UTC) formatted with the common `strftime`
/// directives (`%Y %y %m %d %e %j %H %I %M %S %p %b %B %a %A %%`); others are kept as written.
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format_utc(secs, &format)
}

/// Format `secs` since the Unix epoch (UTC) with a subset of `strftime`.
fn format_utc(secs: i64, format: &str) -> String {
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("");
    let day_name = DAYS.get(weekday).copied().unwrap_or("");
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{year}"),
            Some('y') => write!(out, "{:02}", year.rem_euclid(100)),
            Some('m') => write!(out, "{month:02}"),
            Some('d') => write!(out, "{day:02}"),
            Some('e') => write!(out, "{day:>2}"),
            Some('j') => write!(out, "{day_of_year:03}"),
            Some('H') => write!(out, "{hour:02}"),
            Some('I') => write!(out, "{hour12:02}"),
            Some('M') => write!(out, "{minute:02}"),
            Some('S') => write!(out, "{second:02}"),
            Some('p') => write!(out, "{}", if hour < 12 { "AM" } else { "PM" }),
            Some('b') => write!(out, "{}", month_name.get(..3).unwrap_or("")),
            Some('B') => write!(out, "{month_name}"),
            Some('a') => write!(out, "{}", day_name.get(..3).unwrap_or("")),
            Some('A') => write!(out, "{day_name}"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    // Shift to an era starting 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date (inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `tojson` as transformers defines it: Python's `json.dumps` (no HTML escaping; `", "` and
/// `": "` separators, or an `indent`; `ensure_ascii` and `sort_keys` honoured).
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _separators: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => Some(" ".repeat(usize::try_from(v)?)),
        },
    };
    let json = serde_json::to_value(value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e))?;
    let style = JsonStyle { indent, ensure_ascii: ensure_ascii.unwrap_or(false), sort_keys: sort_keys.unwrap_or(false) };
    let mut out = String::new();
    style.write(&mut out, &json, 0);
    Ok(Value::from_safe_string(out))
}

/// How [`tojson`] lays JSON out.
struct JsonStyle {
    indent: Option<String>,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl JsonStyle {
    fn write(&self, out: &mut String, value: &serde_json::Value, depth: usize) {
        use serde_json::Value as J;
        match value {
            J::String(s) => self.write_str(out, s),
            J::Array(items) => {
                let items: Vec<&J> = items.iter().collect();
                self.write_seq(out, '[', ']', items.len(), depth, |out, i| self.write(out, items[i], depth + 1));
            }
            J::Object(map) => {
                let mut entries: Vec<(&String, &J)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                self.write_seq(out, '{', '}', entries.len(), depth, |out, i| {
                    let (k, v) = entries[i];
                    self.write_str(out, k);
                    out.push_str(": ");
                    self.write(out, v, depth + 1);
                });
            }
            other => out.push_str(&other.to_string()),
        }
    }

    fn write_seq(
        &self,
        out: &mut String,
        open: char,
        close: char,
        len: usize,
        depth: usize,
        mut item: impl FnMut(&mut String, usize),
    ) {
        out.push(open);
        if len == 0 {
            out.push(close);
            return;
        }
        for i in 0..len {
            match &self.indent {
                Some(unit) => {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('\n');
                    out.push_str(&unit.repeat(depth + 1));
                }
                None if i > 0 => out.push_str(", "),
                None => {}
            }
            item(out, i);
        }
        if let Some(unit) = &self.indent {
            out.push('\n');
            out.push_str(&unit.repeat(depth));
        }
        out.push(close);
    }

    fn write_str(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `tokenizer.chat_template` of SmolLM2-135M-Instruct (GGUF metadata), verbatim.
    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn conversation() -> Vec<ChatMessage> {
        vec![
            ChatMessage::system("You are an F1 expert."),
            ChatMessage::user("Who won the 2021 title?"),
            ChatMessage::assistant("Max Verstappen."),
        ]
    }

    fn render(name: &str, add_generation_prompt: bool) -> String {
        ChatTemplate::fallback(name, None, None).unwrap().render(&conversation(), add_generation_prompt).unwrap()
    }

    #[test]
    fn chatml_fallback() {
        let expected = "<|im_start|>system\nYou are an F1 expert.<|im_end|>\n<|im_start|>user\nWho won the 2021 title?<|im_end|>\n<|im_start|>assistant\nMax Verstappen.<|im_end|>\n";
        assert_eq!(render("chatml", false), expected);
        assert_eq!(render("chatml", true), format!("{expected}<|im_start|>assistant\n"));
    }

    #[test]
    fn llama2_fallback() {
        assert_eq!(
            render("llama2", false),
            "<s>[INST] <<SYS>>\nYou are an F1 expert.\n<</SYS>>\n\nWho won the 2021 title? [/INST] Max Verstappen. </s>"
        );
        let mut more = conversation();
        more.push(ChatMessage::user(" And 2022? "));
        let t = ChatTemplate::fallback("llama2", Some("<s>"), Some("</s>")).unwrap();
        assert!(t.render(&more, true).unwrap().ends_with("Max Verstappen. </s><s>[INST] And 2022? [/INST]"));
        let no_system = [ChatMessage::user("Hi")];
        assert_eq!(t.render(&no_system, true).unwrap(), "<s>[INST] Hi [/INST]");
    }

    #[test]
    fn llama3_fallback() {
        let expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are an F1 expert.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho won the 2021 title?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nMax Verstappen.<|eot_id|>";
        assert_eq!(render("llama3", false), expected);
        assert_eq!(render("llama3", true), format!("{expected}<|start_header_id|>assistant<|end_header_id|>\n\n"));
    }

    #[test]
    fn mistral_fallback() {
        assert_eq!(
            render("mistral", false),
            "<s>[INST] You are an F1 expert.\n\nWho won the 2021 title? [/INST] Max Verstappen.</s>"
        );
        let mut more = conversation();
        more.push(ChatMessage::user("And 2022?"));
        assert!(ChatTemplate::fallback("mistral", None, None)
            .unwrap()
            .render(&more, true)
            .unwrap()
            .ends_with("Max Verstappen.</s>[INST] And 2022? [/INST]"));
    }

    #[test]
    fn alpaca_fallback() {
        assert_eq!(
            render("alpaca", false),
            "You are an F1 expert.\n\n### Instruction:\nWho won the 2021 title?\n\n### Response:\nMax Verstappen.\n\n"
        );
        let t = ChatTemplate::fallback("alpaca", None, Some("</s>")).unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user("Name a circuit.")], true).unwrap(),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nName a circuit.\n\n### Response:\n"
        );
    }

    #[test]
    fn fallback_names() {
        for name in FALLBACK_TEMPLATES {
            let t = ChatTemplate::fallback(name, None, None).unwrap();
            assert_eq!(t.name(), *name);
            assert_eq!(t.source(), TemplateSource::Fallback(name));
        }
        match ChatTemplate::fallback("vicuna", None, None) {
            Err(Error::ChatTemplate { name, reason }) => {
                assert_eq!(name, "vicuna");
                assert!(FALLBACK_TEMPLATES.iter().all(|k| reason.contains(k)), "{reason}");
            }
            other => panic!("expected a chat template error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_role_raises() {
        let t = ChatTemplate::fallback("llama2", None, None).unwrap();
        let err = t.render(&[ChatMessage::new("tool", "{}")], false).unwrap_err();
        assert!(matches!(&err, Error::ChatTemplate { name, .. } if name == "llama2"), "{err}");
    }

    #[test]
    fn smollm2_template() {
        let t = ChatTemplate::new(SMOLLM2_TEMPLATE, "model", Some("<|im_start|>"), Some("<|im_end|>")).unwrap();
        assert_eq!(t.source(), TemplateSource::Model);
        assert_eq!(
            t.render(&conversation(), false).unwrap(),
            "<|im_start|>system\nYou are an F1 expert.<|im_end|>\n<|im_start|>user\nWho won the 2021 title?<|im_end|>\n<|im_start|>assistant\nMax Verstappen.<|im_end|>\n"
        );
        // Without a system message the template supplies SmolLM's own.
        assert_eq!(
            t.render(&[ChatMessage::user("Who is fastest at Monza?")], true).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWho is fastest at Monza?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_is_a_template_error() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with the user') }}{% endif %}ok",
            "strict",
            None,
            None,
        )
        .unwrap();
        assert_eq!(t.render(&[ChatMessage::user("hi")], false).unwrap(), "ok");
        match t.render(&[ChatMessage::assistant("hi")], false) {
            Err(Error::ChatTemplate { name, reason }) => {
                assert_eq!(name, "strict");
                assert!(reason.contains("Conversations must start with the user"), "{reason}");
            }
            other => panic!("expected a chat template error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_jinja_is_a_template_error() {
        for source in ["{% for m in messages %}{{ m.content }}", "{{ messages[0] ", "{% if %}x{% endif %}"] {
            match ChatTemplate::new(source, "broken", None, None) {
                Err(Error::ChatTemplate { name, reason }) => {
                    assert_eq!(name, "broken");
                    assert!(!reason.is_empty());
                }
                other => panic!("expected a chat template error for {source:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn jinja2_whitespace_rules_and_python_methods() {
        // trim_blocks/lstrip_blocks: block lines leave no whitespace; a final newline is dropped.
        let source = "{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content.strip().upper() }}]{{ bos_token }}{{ eos_token }}\n    {% endif %}\n{% endfor %}\n";
        let t = ChatTemplate::new(source, "ws", Some("<s>"), None).unwrap();
        assert_eq!(t.render(&[ChatMessage::user("  hi  "), ChatMessage::assistant("x")], false).unwrap(), "[HI]<s>\n");
        let t = ChatTemplate::new("{{ messages[0].content.startswith('F1') }}|{{ messages[0].content.split(' ')[1] }}", "py", None, None).unwrap();
        assert_eq!(t.render(&[ChatMessage::user("F1 rocks")], false).unwrap(), "True|rocks");
    }

    #[test]
    fn generation_markers_are_ignored() {
        let source = "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}";
        let t = ChatTemplate::new(source, "gen", None, None).unwrap();
        assert_eq!(t.render(&conversation(), false).unwrap(), "You are an F1 expert.|Who won the 2021 title?|Max Verstappen.|");
    }

    #[test]
    fn tojson_matches_python() {
        let t = ChatTemplate::new(
            "{{ messages[0] | tojson }} {{ messages[0].content | tojson }} {{ messages | tojson(indent=2) }}",
            "json",
            None,
            None,
        )
        .unwrap();
        let out = t.render(&[ChatMessage::user("<é>\n\"q\"")], false).unwrap();
        assert_eq!(
            out,
            "{\"content\": \"<é>\\n\\\"q\\\"\", \"role\": \"user\"} \"<é>\\n\\\"q\\\"\" [\n  {\n    \"content\": \"<é>\\n\\\"q\\\"\",\n    \"role\": \"user\"\n  }\n]"
        );
    }

    #[test]
    fn strftime_formats_utc() {
        // 2021-12-12 13:05:09 UTC, a Sunday (Abu Dhabi 2021).
        let secs = 1_639_314_309;
        assert_eq!(format_utc(secs, "%d %b %Y"), "12 Dec 2021");
        assert_eq!(format_utc(secs, "%A %B %e, %H:%M:%S %j %I%p %y %% %Q"), "Sunday December 12, 13:05:09 346 01PM 21 % %Q");
        assert_eq!(format_utc(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
        assert_eq!(format_utc(951_782_400, "%Y-%m-%d"), "2000-02-29");
        assert_eq!(days_from_civil(2000, 2, 29), 951_782_400 / 86_400);
        let t = ChatTemplate::new("{{ strftime_now('%Y') }}", "date", None, None).unwrap();
        let year: i64 = t.render(&[], false).unwrap().parse().unwrap();
        assert!(year >= 2024);
    }
}
