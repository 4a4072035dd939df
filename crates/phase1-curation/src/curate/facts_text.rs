//! Facts from text sources: extractive QA over Wikipedia articles (infobox fields and table
//! cells whose value is a span of the article's extracted text, checked verbatim) and strategy
//! facts from live-timing sessions (starting tyre, first pit-stop lap, number of stops).

use std::collections::{BTreeMap, HashMap};

use super::{Category, Difficulty, Fact, Source};
use crate::article::Article;
use crate::livetiming::Session;
use crate::Reject;

/// At most this many table-cell facts per article: season pages hold result matrices of
/// hundreds of cells that would otherwise drown every other category.
pub const TABLE_FACTS_PER_ARTICLE: usize = 30;
/// Longest value kept as an answer span, in characters.
pub const MAX_SPAN: usize = 80;

/// Lowercase words joined by `-`: stable key parts from titles and field names.
pub fn slug(s: &str) -> String {
    super::text::words(s).join("-")
}

/// The article's extracted text: lead, sections, infobox lines and table rows. Extractive
/// answers must be spans of this.
pub fn article_text(a: &Article) -> String {
    let mut out = a.lead.clone();
    for s in &a.sections {
        out.push('\n');
        out.push_str(&s.heading);
        out.push('\n');
        out.push_str(&s.text);
    }
    for (k, v) in &a.infobox {
        out.push_str(&format!("\n{k}: {v}"));
    }
    for t in &a.tables {
        out.push('\n');
        out.push_str(&t.headers.join(" | "));
        for row in &t.rows {
            out.push('\n');
            out.push_str(&row.join(" | "));
        }
    }
    out
}

fn usable(v: &str) -> bool {
    let v = v.trim();
    !v.is_empty() && v.chars().count() <= MAX_SPAN && v.chars().any(char::is_alphanumeric)
}

fn is_number(s: &str) -> bool {
    s.trim().chars().all(|c| c.is_ascii_digit() || c == '.' || c == '=')
}

/// Check that the value is a verbatim span of the article text; a fact whose span is not
/// becomes a reject.
fn checked(fact: Fact, text: &str, source: &str, rejects: &mut Vec<Reject>) -> Option<Fact> {
    if text.contains(&fact.value) && fact.answer.contains(&fact.value) {
        Some(fact)
    } else {
        rejects.push(Reject::record(source, fact.key, "answer span is not verbatim in the article text"));
        None
    }
}

/// Extractive facts from articles: one per infobox field whose name is unique on the page,
/// and up to [`TABLE_FACTS_PER_ARTICLE`] table cells addressed by row label and header.
/// Returns facts and rejects (spans not found verbatim).
pub fn article_facts(articles: &[(String, Article)]) -> (Vec<Fact>, Vec<Reject>) {
    let mut facts = Vec::new();
    let mut rejects = Vec::new();
    for (file, a) in articles {
        let text = article_text(a);
        let where_ = a.url.clone().unwrap_or_else(|| file.clone());
        let t = &a.title;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (k, _) in &a.infobox {
            *counts.entry(k.as_str()).or_default() += 1;
        }
        for (field, value) in &a.infobox {
            if counts[field.as_str()] > 1 || !usable(value) || field.chars().count() > 40 || slug(field).is_empty() {
                continue;
            }
            let value = value.trim().to_owned();
            let f = field.to_lowercase();
            let key = format!("article_infobox:{}:{}", slug(t), slug(field));
            let fact = Fact {
                group: key.clone(),
                provenance: format!("{where_} [infobox {field}]"),
                key,
                source: Source::Wikipedia,
                category: Category::History,
                difficulty: Difficulty::Medium,
                questions: vec![
                    format!("What is the {f} given for {t}?"),
                    format!("According to Wikipedia's article on {t}, what is the {f}?"),
                    format!("In the infobox of the {t} article, what is listed as the {f}?"),
                ],
                answer: format!("The {f} given for {t} is {value}."),
                value,
            };
            facts.extend(checked(fact, &text, &where_, &mut rejects));
        }
        let mut n_table = 0;
        'tables: for (ti, table) in a.tables.iter().enumerate() {
            let ctx = table.caption.clone().or_else(|| table.section.clone()).unwrap_or_else(|| format!("table {}", ti + 1));
            // The row label: the first column whose cells are mostly not numbers.
            let Some(label_col) = (0..table.headers.len()).find(|&c| {
                let cells: Vec<&String> = table.rows.iter().filter_map(|r| r.get(c)).collect();
                !cells.is_empty() && cells.iter().filter(|s| !is_number(s)).count() * 2 > cells.len()
            }) else {
                continue;
            };
            let mut label_counts: HashMap<&str, usize> = HashMap::new();
            for r in &table.rows {
                if let Some(l) = r.get(label_col) {
                    *label_counts.entry(l.as_str()).or_default() += 1;
                }
            }
            let mut header_counts: HashMap<&str, usize> = HashMap::new();
            for h in &table.headers {
                *header_counts.entry(h.as_str()).or_default() += 1;
            }
            for (ri, row) in table.rows.iter().enumerate() {
                let Some(label) = row.get(label_col).filter(|l| usable(l) && label_counts[l.as_str()] == 1) else { continue };
                for (ci, cell) in row.iter().enumerate() {
                    let Some(header) = table.headers.get(ci) else { continue };
                    if ci == label_col || !usable(cell) || !usable(header) || header_counts[header.as_str()] > 1 {
                        continue;
                    }
                    if n_table >= TABLE_FACTS_PER_ARTICLE {
                        break 'tables;
                    }
                    n_table += 1;
                    let value = cell.trim().to_owned();
                    let key = format!("article_table:{}:{}:{}:{}", slug(t), ti + 1, slug(label), slug(header));
                    let fact = Fact {
                        group: key.clone(),
                        provenance: format!("{where_} [table {} row {} column {}]", ti + 1, ri + 1, ci + 1),
                        key,
                        source: Source::Wikipedia,
                        category: Category::History,
                        difficulty: Difficulty::Hard,
                        questions: vec![
                            format!("In the \"{ctx}\" table of the {t} article, what is the {header} for {label}?"),
                            format!("According to Wikipedia's {t} page ({ctx}), what {header} is listed for {label}?"),
                            format!("What does the {t} article's \"{ctx}\" table give as {label}'s {header}?"),
                        ],
                        answer: format!("The \"{ctx}\" table of the {t} article lists {label} with {header} {value}."),
                        value,
                    };
                    facts.extend(checked(fact, &text, &where_, &mut rejects));
                }
            }
        }
    }
    (facts, rejects)
}

/// "the 2018 Azerbaijan Grand Prix" for races, "the 2023 Azerbaijan Grand Prix sprint" otherwise.
fn session_title(s: &Session, year: u16) -> String {
    if s.info.session_type == "Race" && s.info.session_name == "Race" {
        format!("the {year} {}", s.info.meeting_name)
    } else {
        format!("the {year} {} {}", s.info.meeting_name, s.info.session_name.to_lowercase())
    }
}

/// The year of a session, from its start date.
pub fn session_year(s: &Session) -> Option<u16> {
    s.info.start_date.get(..4)?.parse().ok()
}

/// Strategy facts of live-timing sessions in `years`: each driver's starting compound, the lap
/// of the first pit stop and the number of stops (races and sprints only for the last two).
pub fn livetiming_facts(sessions: &[(String, Session)], years: (u16, u16)) -> Vec<Fact> {
    let mut facts = Vec::new();
    for (dir, s) in sessions {
        let Some(year) = session_year(s).filter(|y| (years.0..=years.1).contains(y)) else { continue };
        let title = session_title(s, year);
        let skey = slug(&format!("{year} {} {}", s.info.meeting_name, s.info.session_name));
        let racing = matches!(s.info.session_type.as_str(), "Race");
        let mut stops: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for p in &s.pit_stops {
            if let Some(lap) = p.lap {
                stops.entry(p.driver.as_str()).or_default().push(lap);
            }
        }
        for (num, d) in &s.drivers {
            let name = format!("{} {}", d.first_name, d.last_name);
            let tla = d.tla.to_lowercase();
            let base = |kind: &str| format!("{kind}:{skey}:{tla}");
            let cap = |t: &str| {
                let mut c = t.chars();
                c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
            };
            if let Some(compound) = s.stints.iter().find(|st| st.driver == *num && st.stint_number == 1).and_then(|st| st.compound.clone()) {
                let c = compound.to_lowercase();
                let key = base("tyre_start");
                facts.push(Fact {
                    group: key.clone(),
                    provenance: format!("{dir}/TimingAppData.jsonStream [driver {num} stint 1]"),
                    key,
                    source: Source::Livetiming,
                    category: Category::Strategy,
                    difficulty: Difficulty::Medium,
                    questions: vec![
                        format!("What tyre compound did {name} start {title} on?"),
                        format!("On which tyres did {name} begin {title}?"),
                        format!("Which compound did {name} use for the first stint of {title}?"),
                    ],
                    answer: format!("{name} started {title} on the {c} compound."),
                    value: c,
                });
            }
            if !racing {
                continue;
            }
            let laps = stops.get(num.as_str()).cloned().unwrap_or_default();
            if let Some(first) = laps.iter().min() {
                let key = base("first_pit_lap");
                facts.push(Fact {
                    group: key.clone(),
                    provenance: format!("{dir}/TimingData.jsonStream [driver {num} pit stops]"),
                    key,
                    source: Source::Livetiming,
                    category: Category::Strategy,
                    difficulty: Difficulty::Hard,
                    questions: vec![
                        format!("On which lap did {name} make his first pit stop in {title}?"),
                        format!("When did {name} first pit during {title}?"),
                        format!("{} — on what lap did {name} come in for the first stop?", cap(&title)),
                    ],
                    answer: format!("{name} made his first pit stop on lap {first} of {title}."),
                    value: format!("lap {first}"),
                });
            }
            let n = laps.len();
            let key = base("pit_stop_count");
            facts.push(Fact {
                group: key.clone(),
                provenance: format!("{dir}/TimingData.jsonStream [driver {num} pit stops]"),
                key,
                source: Source::Livetiming,
                category: Category::Strategy,
                difficulty: Difficulty::Hard,
                questions: vec![
                    format!("How many pit stops did {name} make in {title}?"),
                    format!("How many times did {name} stop in the pits during {title}?"),
                    format!("What was {name}'s number of pit stops in {title}?"),
                ],
                answer: format!("{name} made {n} pit stop{} in {title}.", if n == 1 { "" } else { "s" }),
                value: format!("{n} pit stop"),
            });
        }
    }
    facts
}
