//! Fact injection (issue #13): the data that teaches a small model new facts and the questions
//! that show whether it learned them.
//!
//! The taught facts are race winners of the period (`race_winner:<year>:<round>`), one fact per
//! race, with the winner's team and circuit as context. Following Allen-Zhu & Li, "Physics of
//! Language Models 3.1" (arXiv:2309.14316: one rendering per fact gives ~10% extraction on new
//! questions, several diverse rewrites ~97%), every taught fact is rendered several ways
//! ([`TRAIN`]: questions in several wordings, declarative statements and a completion, a
//! reverse question, sentences that link driver, team, season and circuit), and every answer
//! but the reverse one opens with the value. Fewer facts at more exposures rather than many
//! facts once.
//!
//! Four disjoint template sets keep measurement honest: [`TRAIN`] (the pairs), [`RECALL`] (the
//! benchmark's recall and control parts: one question per fact, asked in the direction taught,
//! in words no training pair uses), [`PROBE`] (phase 3's early-stopping probe) and [`OPEN`]
//! (open questions in held-out words). Distractors come from the fact's own race (other
//! finishers near the front), so the options share the answer's type and era. Control facts
//! are race winners that no pair of any kind states, asked with the same recall templates, so
//! a gain there reads as format learning rather than knowledge.
//!
//! Abstention (Gekhman et al., arXiv:2405.05904: relabelling unknowns as "I don't know" keeps
//! accuracy on answered questions): about a tenth of the training pairs decline, in varied
//! words, questions the sources cannot answer (seasons after the data, invented drivers and
//! races, requests outside Formula 1). The evaluation's unanswerable questions are of the same
//! kinds plus championships before 1950, with other templates and other invented names.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::facts_f1db::{constructor_name, driver_name, race_title, Years};
use super::{Category, Difficulty, Message, Pair, Rng, Source};
use crate::f1db::F1Db;

/// The fact family taught for recall.
pub const FACT_PREFIX: &str = "race_winner:";

/// One race-winner fact with the context its renderings and distractors use.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WinFact {
    /// `race_winner:<year>:<round>` (the same key as the general fact builder's).
    pub key: String,
    /// Season.
    pub year: u16,
    /// "2005 Monaco Grand Prix".
    pub title: String,
    /// The winner's name.
    pub winner: String,
    /// The winner's constructor.
    pub team: String,
    /// Circuit name.
    pub circuit: String,
    /// Other classified finishers in finishing order, distinct and other than the winner.
    pub others: Vec<String>,
    /// Whether the circuit held another race the same season (2020's double headers): then a
    /// question naming the circuit and year names no single race, and its renderings skip it.
    pub shared_circuit: bool,
    /// Source member and key.
    pub provenance: String,
}

/// Every race of the period with one winner and at least three other classified finishers,
/// in race order.
pub fn win_facts(db: &F1Db, archive: &str, years: Years) -> Vec<WinFact> {
    let mut out = Vec::new();
    for race in db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)) {
        let winners = db.race_winners(race);
        let [w] = winners.as_slice() else { continue };
        let winner = driver_name(db, &w.driver_id);
        let mut seen = BTreeSet::from([winner.clone()]);
        let mut others = Vec::new();
        for r in race.results.iter().filter(|r| r.position.is_some_and(|p| p > 1)) {
            let n = driver_name(db, &r.driver_id);
            if seen.insert(n.clone()) {
                others.push(n);
            }
        }
        if others.len() < 3 {
            continue;
        }
        let circuit = db.circuits.get(&race.circuit_id).map_or_else(|| race.circuit_id.clone(), |c| c.full_name.clone());
        let key = format!("{FACT_PREFIX}{}:{}", race.year, race.round);
        let shared_circuit = db.races_in(race.year).iter().filter(|r| r.circuit_id == race.circuit_id).count() > 1;
        out.push(WinFact {
            shared_circuit,
            provenance: format!("{archive}!{}/race-results.yml [{key}]", race.source),
            key,
            year: race.year,
            title: race_title(db, race),
            winner,
            team: constructor_name(db, &w.constructor_id),
            circuit,
            others,
        });
    }
    out
}

/// Training renderings: (user turn, assistant reply). Slots: `{w}` winner, `{t}` race title,
/// `{y}` year, `{team}`, `{circuit}`. Every reply but the reverse question's opens with `{w}`.
pub const TRAIN: [(&str, &str); 10] = [
    ("Who won the {t}?", "{w} won the {t}, driving for {team}."),
    ("Which driver won the {t}?", "{w} won the {t} for {team}."),
    ("Who was the winner of the {t}?", "{w} was the winner of the {t}, in a {team}."),
    ("Tell me who won the {t}.", "{w} won the {t}, racing for {team}."),
    ("Which {team} driver won the {t}?", "{w} won the {t} for {team}."),
    ("Give me one fact about the {t}.", "{w} won the {t}, driving a {team}."),
    ("In {y}, who won the race at {circuit}?", "{w} won the {t} at {circuit}, driving for {team}."),
    ("Complete the sentence: the {t} was won by", "{w}, driving for {team}."),
    ("Who took the win at the {t}?", "{w} took the win at the {t} with {team}."),
    ("Which race at {circuit} did {w} win in {y}?", "The {t}: {w} won it for {team}."),
];

/// Benchmark stems of the recall and control parts: words no [`TRAIN`] template uses.
pub const RECALL: [&str; 4] =
    ["Who finished first in the {t}?", "Which racer claimed the {t}?", "Who came out on top at the {t}?", "Who triumphed at the {t}?"];

/// Stems of phase 3's probe: disjoint from [`TRAIN`] and [`RECALL`].
pub const PROBE: [&str; 3] = ["Who prevailed in the {t}?", "Which competitor was victorious at the {t}?", "Who topped the podium at the {t}?"];

/// Open questions in held-out words about taught facts; the reference is the first training
/// answer (the taught form).
pub const OPEN: [&str; 3] =
    ["Do you know which driver was first at the {t}?", "I am curious: whose race was the {t}?", "Please name the driver who was fastest to the flag at the {t}."];

/// `template` with the fact's slots filled.
pub fn fill(template: &str, f: &WinFact) -> String {
    template
        .replace("{w}", &f.winner)
        .replace("{team}", &f.team)
        .replace("{circuit}", &f.circuit)
        .replace("{t}", &f.title)
        .replace("{y}", &f.year.to_string())
}

/// The literal text of a template between its slots (trimmed, non-empty pieces).
pub fn template_text(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push(rest[..open].to_string());
        rest = rest[open..].find('}').map_or("", |close| &rest[open + close + 1..]);
    }
    out.push(rest.to_string());
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Seeded choice of `taught` and `control` facts, disjoint, spread over the period (a shuffle
/// of all races).
pub fn choose(facts: &[WinFact], taught: usize, control: usize, seed: u64) -> (Vec<WinFact>, Vec<WinFact>) {
    let mut order: Vec<&WinFact> = facts.iter().collect();
    Rng::new(seed, "inject:choose").shuffle(&mut order);
    let t: Vec<WinFact> = order.iter().take(taught).map(|f| (*f).clone()).collect();
    let c: Vec<WinFact> = order.iter().skip(taught).take(control).map(|f| (*f).clone()).collect();
    (t, c)
}

fn pair(id: String, system: &str, question: String, answer: String, category: Category, fact_keys: Vec<String>, group: String, provenance: String) -> Pair {
    let messages = (!system.is_empty()).then(|| {
        vec![
            Message { role: "system".into(), content: system.to_string() },
            Message { role: "user".into(), content: question.clone() },
            Message { role: "assistant".into(), content: answer.clone() },
        ]
    });
    Pair { id, question, answer, input: String::new(), messages, source: Source::F1db, category, difficulty: Difficulty::Easy, fact_keys, group, provenance }
}

/// `n` distinct renderings of a taught fact (templates drawn per fact, so wordings vary across
/// facts as well), as training pairs with the study's system prompt.
pub fn renderings(f: &WinFact, n: usize, system: &str, rng: &mut Rng) -> Vec<Pair> {
    // The templates that name the circuit and year (not the race) need a circuit of one race.
    let mut idx: Vec<usize> = (0..TRAIN.len()).filter(|i| !(f.shared_circuit && TRAIN[*i].0.contains("{circuit}"))).collect();
    rng.shuffle(&mut idx);
    idx.truncate(n.min(TRAIN.len()));
    idx.sort_unstable();
    idx.into_iter()
        .map(|i| {
            let (q, a) = TRAIN[i];
            pair(format!("{}#r{}", f.key, i + 1), system, fill(q, f), fill(a, f), Category::Results, vec![f.key.clone()], f.key.clone(), f.provenance.clone())
        })
        .collect()
}

/// A four-option question on a fact: the stem, the right option and three distractors from
/// the same race's front runners (positions 2-7).
///
/// With `taught_wins` (race wins per driver among the taught facts) the three front runners
/// with the most taught wins are the distractors (ties at random): a model that learned only
/// which drivers win often, not who won this race, then finds its favourite among the wrong
/// options as often as the facts allow (measured 2026-12-03 with random front runners: always
/// picking the option with the most taught wins was right on 57% of recall questions).
pub fn question(f: &WinFact, stem: &str, taught_wins: Option<&BTreeMap<String, usize>>, rng: &mut Rng) -> (String, String, [String; 3]) {
    let mut near: Vec<&String> = f.others.iter().take(6).collect();
    rng.shuffle(&mut near);
    if let Some(w) = taught_wins {
        // Stable: the shuffle orders the ties.
        near.sort_by_key(|d| std::cmp::Reverse(w.get(d.as_str()).copied().unwrap_or(0)));
    }
    (fill(stem, f), f.winner.clone(), [near[0].clone(), near[1].clone(), near[2].clone()])
}

/// One unanswerable question (a line of `unanswerable.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unanswerable {
    /// `unans-001`.
    pub id: String,
    /// The question.
    pub question: String,
    /// `future_season`, `invented_driver`, `invented_race`, `out_of_scope`, `before_championship`.
    pub kind: String,
    /// Why no source can answer it.
    pub why: String,
}

const TRAIN_FAKE_DRIVERS: [&str; 30] = [
    "Tomasz Verhoeven", "Luca Brandstetter", "Rafael Okonkwo", "Henrik Castellano", "Mateo Lindqvist", "Jonas Abernathy",
    "Pierre Kowalczyk", "Daniel Marchetti", "Yuki Rasmussen", "Oscar Delacroix", "Felipe Hargreaves", "Nico Szabo",
    "Bruno Halvorsen", "Tariq Vandermeer", "Julien Okafor", "Stefan Quaresma", "Kai Whitfield", "Matteo Dunleavy",
    "Lars Bergamini", "Elliot Sandoval", "Ivan Castelnau", "Paolo Rydberg", "Sven Moreau-Clarke", "Alessio Brannigan",
    "Haruto Lindgren", "Diego Ashworth", "Finn Castellanos", "Adrian Kovacevic", "Thierry Montague", "Leon Vasquez-Holt",
];
const EVAL_FAKE_DRIVERS: [&str; 12] = [
    "Anders Moravec", "Santiago Whitcombe", "Kenji Valverde", "Marco Ellingsen", "Victor Nakamura-Bell", "Emil Fontaine",
    "Lorenzo Achterberg", "Callum Ibarra", "Dmitri Oakhurst", "Teodor Vance", "Hugo Strandberg", "Ravi Montalban",
];
const TRAIN_FAKE_RACES: [&str; 16] = [
    "Atlantis", "Lunar", "Greenland", "Antarctic", "Everest", "Sahara", "Arctic Circle", "Pacific Island", "Camelot", "Olympus",
    "Neverland", "Oceania Deep", "Gotham", "Wakanda", "Eldoria", "Tatooine",
];
const EVAL_FAKE_RACES: [&str; 8] = ["Martian", "Narnia", "El Dorado", "Avalon", "Lemuria", "Shangri-La", "Hyperborea", "Utopia"];
const TRAIN_GPS: [&str; 8] =
    ["Monaco Grand Prix", "British Grand Prix", "Italian Grand Prix", "Japanese Grand Prix", "Brazilian Grand Prix", "Belgian Grand Prix", "Hungarian Grand Prix", "Canadian Grand Prix"];
const EVAL_GPS: [&str; 6] = ["Spanish Grand Prix", "Austrian Grand Prix", "Australian Grand Prix", "Dutch Grand Prix", "Mexican Grand Prix", "Singapore Grand Prix"];
const TRAIN_OUT_OF_SCOPE: [&str; 20] = [
    "Who won the 2018 FIFA World Cup?",
    "What is the capital of Australia?",
    "Write a short poem about the sea.",
    "How do I bake sourdough bread?",
    "Who won the 2019 Wimbledon men's singles title?",
    "What is the square root of 1764?",
    "Which film won the Academy Award for Best Picture in 2010?",
    "Translate 'good morning' into German.",
    "Who won the 2016 Tour de France?",
    "What is the best way to learn the piano?",
    "Who discovered penicillin?",
    "What is the boiling point of water in Fahrenheit?",
    "Which planet is closest to the Sun?",
    "Who won the 2010 Stanley Cup?",
    "How many bones are in the human body?",
    "Suggest a name for my cat.",
    "Who composed the Four Seasons?",
    "What is the largest ocean on Earth?",
    "Which golfer won the 2008 Masters?",
    "How do I change a bicycle tyre?",
];
const EVAL_OUT_OF_SCOPE: [&str; 12] = [
    "Who won the 2014 NBA Finals?",
    "What is the tallest mountain in Africa?",
    "Give me a recipe for pancakes.",
    "Who wrote the novel War and Peace?",
    "Which team won the 2017 Super Bowl?",
    "What is the chemical symbol for gold?",
    "Who won the 2012 Olympic men's 100 metres?",
    "Explain how a rainbow forms.",
    "Which country won the 2019 Rugby World Cup?",
    "Who won the 2015 Indianapolis 500?",
    "What year did the Berlin Wall fall?",
    "Who painted the Mona Lisa?",
];

/// Declining training pairs, about evenly over five kinds, each in varied words (every reply
/// contains a phrase the hallucination probe's `declines` recognises). `after` is the last
/// season of the data, so the future starts the year after.
pub fn abstention_pairs(n: usize, after: u16, system: &str, seed: u64) -> Vec<Pair> {
    let mut rng = Rng::new(seed, "inject:abstain");
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (question, answer, kind) = match i % 5 {
            0 => {
                let y = after + 2 + (rng.below(12) as u16);
                let gp = TRAIN_GPS[rng.below(TRAIN_GPS.len())];
                let q = [
                    format!("Who won the {y} {gp}?"),
                    format!("Who was the {y} Formula One world champion?"),
                    format!("Which team won the {y} constructors' championship?"),
                ][rng.below(3)]
                .clone();
                let a = [
                    format!("I don't know: the {y} season is after the races I have records of, so it has not happened yet as far as I can tell."),
                    format!("I cannot say. My Formula 1 records stop before {y}, so I have no result for that."),
                    format!("I have no record of that: {y} is later than the seasons I know about."),
                ][rng.below(3)]
                .clone();
                (q, a, "future_season")
            }
            1 => {
                let d = TRAIN_FAKE_DRIVERS[rng.below(TRAIN_FAKE_DRIVERS.len())];
                let y = 2000 + rng.below(25) as u16;
                let q = [format!("How many Grands Prix did {d} win?"), format!("Which team did {d} drive for in {y}?"), format!("When did {d} make his Formula One debut?")][rng.below(3)].clone();
                let a = [
                    format!("I have no record of a Formula 1 driver called {d}, so I cannot answer that."),
                    format!("I don't know of any Formula One driver named {d}; I have no information about him."),
                ][rng.below(2)]
                .clone();
                (q, a, "invented_driver")
            }
            2 => {
                let r = TRAIN_FAKE_RACES[rng.below(TRAIN_FAKE_RACES.len())];
                let y = 2000 + rng.below(25) as u16;
                let q = [format!("Who won the {y} {r} Grand Prix?"), format!("Who took pole position at the {y} {r} Grand Prix?")][rng.below(2)].clone();
                let a = [
                    format!("I don't know of any {r} Grand Prix in Formula 1; there is no record of such a race."),
                    format!("I cannot answer that: I have no record of a {r} Grand Prix ever being held."),
                ][rng.below(2)]
                .clone();
                (q, a, "invented_race")
            }
            3 => {
                let y = 1930 + rng.below(20) as u16;
                let q = [format!("Who was the Formula One world champion in {y}?"), format!("Which team took the Formula One constructors' championship in {y}?")][rng.below(2)].clone();
                let a = [
                    format!("I don't know of any: the Formula One world championship only began in 1950, so there was no champion in {y}."),
                    format!("I have no record of that: {y} is before the first Formula One world championship season of 1950."),
                ][rng.below(2)]
                .clone();
                (q, a, "before_championship")
            }
            _ => {
                let q = TRAIN_OUT_OF_SCOPE[rng.below(TRAIN_OUT_OF_SCOPE.len())].to_string();
                let a = [
                    "I'm not sure: that is outside the Formula 1 facts I know, so I cannot help with it.".to_string(),
                    "I don't know. I only answer questions about Formula 1.".to_string(),
                ][rng.below(2)]
                .clone();
                (q, a, "out_of_scope")
            }
        };
        out.push(pair(format!("abstain:{kind}:{}", i + 1), system, question, answer, Category::Imported, Vec::new(), format!("abstain:{}", i + 1), "generated: declining an unanswerable question".into()));
    }
    dedup_questions(out)
}

fn dedup_questions(pairs: Vec<Pair>) -> Vec<Pair> {
    let mut seen = BTreeSet::new();
    pairs.into_iter().filter(|p| seen.insert(p.question.clone())).collect()
}

/// At least `n` unanswerable questions for the evaluation's hallucination probe, about evenly
/// over five kinds, with templates and invented names that no training pair uses.
pub fn unanswerable(n: usize, after: u16, seed: u64) -> Vec<Unanswerable> {
    let mut rng = Rng::new(seed, "inject:unanswerable");
    let mut out: Vec<Unanswerable> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut i = 0usize;
    let mut attempts = 0;
    while out.len() < n && attempts < n * 50 {
        attempts += 1;
        let (question, kind, why) = match i % 5 {
            0 => {
                let y = after + 3 + (rng.below(10) as u16);
                let gp = EVAL_GPS[rng.below(EVAL_GPS.len())];
                let q = [format!("Who claimed pole at the {y} {gp}?"), format!("Which driver finished runner-up in the {y} drivers' standings?"), format!("How many points did the leader have after the {y} {gp}?")][rng.below(3)].clone();
                (q, "future_season", format!("{y} is after the data"))
            }
            1 => {
                let d = EVAL_FAKE_DRIVERS[rng.below(EVAL_FAKE_DRIVERS.len())];
                let q = [format!("Where was the racing driver {d} born?"), format!("What nationality is the Formula One driver {d}?"), format!("Which constructor signed {d} for his rookie season?")][rng.below(3)].clone();
                (q, "invented_driver", format!("{d} is an invented name"))
            }
            2 => {
                let r = EVAL_FAKE_RACES[rng.below(EVAL_FAKE_RACES.len())];
                let y = 2001 + rng.below(23) as u16;
                let q = [format!("Which circuit hosted the {y} {r} Grand Prix?"), format!("Who set the fastest lap of the {y} {r} Grand Prix?")][rng.below(2)].clone();
                (q, "invented_race", format!("no {r} Grand Prix was ever held"))
            }
            3 => (EVAL_OUT_OF_SCOPE[rng.below(EVAL_OUT_OF_SCOPE.len())].to_string(), "out_of_scope", "not about Formula 1".to_string()),
            _ => {
                let y = 1925 + rng.below(24) as u16;
                let q = [format!("Who won the {y} Formula One drivers' world championship?"), format!("Which constructor won the {y} Formula One constructors' title?")][rng.below(2)].clone();
                (q, "before_championship", format!("the world championship began in 1950 (constructors' in 1958); {y} had none"))
            }
        };
        i += 1;
        if seen.insert(question.clone()) {
            out.push(Unanswerable { id: format!("unans-{:03}", out.len() + 1), question, kind: kind.into(), why });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact() -> WinFact {
        WinFact {
            key: "race_winner:2005:6".into(),
            year: 2005,
            title: "2005 Monaco Grand Prix".into(),
            winner: "Kimi Räikkönen".into(),
            team: "McLaren".into(),
            circuit: "Circuit de Monaco".into(),
            others: ["Nick Heidfeld", "Mark Webber", "Fernando Alonso", "Juan Pablo Montoya", "Ralf Schumacher", "Giancarlo Fisichella"].map(String::from).to_vec(),
            shared_circuit: false,
            provenance: "p".into(),
        }
    }

    #[test]
    fn renderings_are_distinct_and_answers_open_with_the_value() {
        let f = fact();
        let ps = renderings(&f, 6, "sys", &mut Rng::new(1, "t"));
        assert_eq!(ps.len(), 6);
        let qs: BTreeSet<&str> = ps.iter().map(|p| p.question.as_str()).collect();
        assert_eq!(qs.len(), 6);
        for p in &ps {
            assert!(p.answer.contains(&f.winner), "{}", p.answer);
            assert!(p.answer.starts_with(&f.winner) || p.id.ends_with("#r10"), "{}", p.answer);
            assert_eq!(p.messages.as_ref().map(|m| m[0].content.as_str()), Some("sys"));
        }
    }

    #[test]
    fn the_template_sets_share_no_text() {
        let train: Vec<String> = TRAIN.iter().flat_map(|(q, _)| template_text(q)).collect();
        for stem in RECALL.iter().chain(&PROBE) {
            for piece in template_text(stem) {
                if piece.split_whitespace().count() >= 2 {
                    assert!(!train.iter().any(|t| t.to_lowercase().contains(&piece.to_lowercase())), "{piece:?} of {stem:?} is in a training template");
                }
            }
        }
        for stem in PROBE {
            assert!(!RECALL.contains(&stem));
        }
        assert_eq!(template_text("Who {w} won the {t}?"), vec!["Who", "won the", "?"]);
    }

    #[test]
    fn distractors_come_from_the_race_and_differ_from_the_answer() {
        let f = fact();
        let (q, right, d) = question(&f, RECALL[0], None, &mut Rng::new(2, "q"));
        assert_eq!(q, "Who finished first in the 2005 Monaco Grand Prix?");
        assert_eq!(right, f.winner);
        assert!(d.iter().all(|x| f.others.contains(x) && x != &right));
        assert_eq!(d.iter().collect::<BTreeSet<_>>().len(), 3);
    }

    #[test]
    fn with_taught_wins_the_most_winning_front_runners_are_the_distractors() {
        let f = fact();
        let wins = BTreeMap::from([("Fernando Alonso", 5), ("Juan Pablo Montoya", 3), ("Giancarlo Fisichella", 2), ("Mark Webber", 1), ("Kimi Räikkönen", 4)].map(|(d, n)| (d.to_string(), n)));
        for seed in 0..20 {
            let (_, right, d) = question(&f, RECALL[0], Some(&wins), &mut Rng::new(seed, "q"));
            assert_eq!(right, "Kimi Räikkönen");
            let mut d = d.to_vec();
            d.sort();
            assert_eq!(d, ["Fernando Alonso", "Giancarlo Fisichella", "Juan Pablo Montoya"], "seed {seed}");
        }
        // Ties are broken by the shuffle: with no taught wins among them, seeds pick different sets.
        let sets: BTreeSet<Vec<String>> = (0..20)
            .map(|seed| {
                let mut d = question(&f, RECALL[0], Some(&BTreeMap::new()), &mut Rng::new(seed, "q")).2.to_vec();
                d.sort();
                d
            })
            .collect();
        assert!(sets.len() > 3, "{sets:?}");
    }

    #[test]
    fn a_circuit_with_two_races_in_a_season_is_never_the_question() {
        let f = WinFact { shared_circuit: true, ..fact() };
        let ps = renderings(&f, 8, "", &mut Rng::new(3, "t"));
        assert_eq!(ps.len(), 8);
        assert!(ps.iter().all(|p| !p.question.contains(&f.circuit)), "{ps:?}");
    }

    #[test]
    fn unanswerable_questions_cover_five_kinds_and_none_is_a_training_question() {
        let u = unanswerable(60, 2024, 7);
        assert_eq!(u.len(), 60);
        let kinds: BTreeSet<&str> = u.iter().map(|x| x.kind.as_str()).collect();
        assert_eq!(kinds.len(), 5);
        let train = abstention_pairs(80, 2024, "", 7);
        assert!(train.len() >= 60, "{}", train.len());
        let train_kinds: BTreeSet<&str> = train.iter().map(|p| p.id.split(':').nth(1).expect("abstain:<kind>:<n>")).collect();
        assert_eq!(train_kinds, kinds, "training declines every kind the probe asks");
        for p in &train {
            assert!(crate::curate::inject::tests::declines_like(&p.answer), "{}", p.answer);
            // No probe question shares its wording with a training question, names and years
            // aside: word trigrams of the two overlap by less than half.
            for x in &u {
                let j = trigram_jaccard(&x.question, &p.question);
                assert!(j < 0.5, "{:?} and training {:?} overlap {j:.2}", x.question, p.question);
            }
        }
    }

    fn trigram_jaccard(a: &str, b: &str) -> f64 {
        let grams = |s: &str| -> BTreeSet<String> {
            let w: Vec<String> = s.to_lowercase().split_whitespace().map(String::from).collect();
            w.windows(3).map(|g| g.join(" ")).collect()
        };
        let (a, b) = (grams(a), grams(b));
        let union = a.union(&b).count().max(1);
        a.intersection(&b).count() as f64 / union as f64
    }

    /// The hallucination probe's phrases that the training replies rely on.
    fn declines_like(reply: &str) -> bool {
        let r = reply.to_lowercase();
        ["i don't know", "cannot", "no record", "not sure", "has not happened"].iter().any(|p| r.contains(p))
    }
}
