//! The multiple-choice benchmark: four options, one right, built from F1DB with templates
//! other than the training pairs' and meant to test reasoning over facts rather than recall of
//! a training sentence: "which of these" (recognise one fact among distractors of the same
//! kind and season), counts, comparisons and orderings (combine four facts).
//!
//! A question is *taught* when every fact it rests on is stated by a training-split pair, and
//! *control* when none of its facts appears in any pair at all; mixed questions are dropped.
//! [`select`] draws the configured control share from control candidates and the rest from
//! taught ones, round-robin over templates, then places the answers so that each letter A-D
//! holds the answer equally often (exactly, when the size is a multiple of four).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::facts_f1db::{
    constructor_name, constructor_standing_key, driver_name, race_title, season_wins, season_wins_key, standing_key,
    Years, TOP_CONSTRUCTORS, TOP_DRIVERS,
};
use super::{Category, Difficulty, Rng};
use crate::f1db::F1Db;

/// One benchmark question as written to `benchmark.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// `bench-0001`.
    pub id: String,
    /// The stem.
    pub question: String,
    /// Four options.
    pub options: Vec<String>,
    /// `A`..`D`.
    pub answer: String,
    /// 0..3.
    pub answer_index: usize,
    /// Category.
    pub category: Category,
    /// By the rule on [`Difficulty`].
    pub difficulty: Difficulty,
    /// Facts the question rests on.
    pub fact_keys: Vec<String>,
    /// True when none of those facts is in any training pair.
    pub control: bool,
    /// The template that made it.
    pub template: String,
    /// Provenance of the facts.
    pub provenance: String,
}

/// A question before selection and answer placement.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Template name.
    pub template: &'static str,
    /// Stem.
    pub question: String,
    /// The right option.
    pub correct: String,
    /// Three wrong options.
    pub distractors: [String; 3],
    /// Category.
    pub category: Category,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Facts it rests on.
    pub fact_keys: Vec<String>,
}

fn pick3(pool: &[String], exclude: &str, rng: &mut Rng) -> Option<[String; 3]> {
    let mut pool: Vec<&String> = pool.iter().filter(|p| p.as_str() != exclude).collect::<BTreeSet<_>>().into_iter().collect();
    if pool.len() < 3 {
        return None;
    }
    rng.shuffle(&mut pool);
    Some([pool[0].clone(), pool[1].clone(), pool[2].clone()])
}

/// "A, B, C and D" in alphabetical order, so the stem says nothing about the answer.
fn listing(names: &[String]) -> String {
    let mut n = names.to_vec();
    n.sort();
    format!("{}, {}, {} and {}", n[0], n[1], n[2], n[3])
}

/// Every 4-subset of `0..n` (n ≤ 12 here, so at most 495).
fn quads(n: usize) -> Vec<[usize; 4]> {
    let mut out = Vec::new();
    for a in 0..n {
        for b in a + 1..n {
            for c in b + 1..n {
                for d in c + 1..n {
                    out.push([a, b, c, d]);
                }
            }
        }
    }
    out
}

/// A question over four items whose scores pick one winner (highest, or lowest with `min`);
/// `None` when the best score is shared.
fn best_of(items: &[(String, String, i64)], min: bool) -> Option<(String, [String; 3], Vec<String>)> {
    let score = |s: i64| if min { -s } else { s };
    let best = items.iter().map(|i| score(i.2)).max()?;
    let winners: Vec<&(String, String, i64)> = items.iter().filter(|i| score(i.2) == best).collect();
    if winners.len() != 1 {
        return None;
    }
    let others: Vec<String> = items.iter().filter(|i| score(i.2) != best).map(|i| i.0.clone()).collect();
    let keys = items.iter().map(|i| i.1.clone()).collect();
    Some((winners[0].0.clone(), [others[0].clone(), others[1].clone(), others[2].clone()], keys))
}

/// Every candidate question of the period, in a fixed order.
pub fn candidates(db: &F1Db, years: Years, seed: u64) -> Vec<Candidate> {
    let mut rng = Rng::new(seed, "benchmark-distractors");
    let mut out = Vec::new();
    let in_years = |y: u16| (years.0..=years.1).contains(&y);
    let mut period_drivers: BTreeMap<String, u16> = BTreeMap::new();
    for race in db.races.iter().filter(|r| in_years(r.year)) {
        let t = race_title(db, race);
        let (y, n) = (race.year, race.round);
        let top: Vec<String> = race.results.iter().take(10).map(|r| driver_name(db, &r.driver_id)).collect();
        for r in &race.results {
            period_drivers.entry(r.driver_id.clone()).or_insert(y);
        }
        if let Some(w) = db.race_winner(race) {
            let name = driver_name(db, &w.driver_id);
            if let Some(d) = pick3(&top, &name, &mut rng) {
                out.push(Candidate {
                    template: "winner_which",
                    question: format!("The {t} was won by which of these drivers?"),
                    correct: name,
                    distractors: d,
                    category: Category::Results,
                    difficulty: Difficulty::Easy,
                    fact_keys: vec![format!("race_winner:{y}:{n}")],
                });
            }
        }
        if let Some(p) = race.qualifying.iter().find(|q| q.position == Some(1)) {
            let name = driver_name(db, &p.driver_id);
            let quali: Vec<String> = race.qualifying.iter().take(10).map(|q| driver_name(db, &q.driver_id)).collect();
            if let Some(d) = pick3(&quali, &name, &mut rng) {
                out.push(Candidate {
                    template: "pole_which",
                    question: format!("Which of these drivers set the fastest qualifying time for the {t}?"),
                    correct: name,
                    distractors: d,
                    category: Category::Results,
                    difficulty: Difficulty::Easy,
                    fact_keys: vec![format!("race_pole:{y}:{n}")],
                });
            }
        }
        let season_circuits: Vec<String> = db
            .races_in(y)
            .iter()
            .filter_map(|r| db.circuits.get(&r.circuit_id).map(|c| c.full_name.clone()))
            .collect();
        if let Some(c) = db.circuits.get(&race.circuit_id) {
            if let Some(d) = pick3(&season_circuits, &c.full_name, &mut rng) {
                out.push(Candidate {
                    template: "circuit_which",
                    question: format!("Which of these venues staged the {t}?"),
                    correct: c.full_name.clone(),
                    distractors: d,
                    category: Category::Circuits,
                    difficulty: Difficulty::Easy,
                    fact_keys: vec![format!("race_circuit:{y}:{n}")],
                });
            }
        }
    }
    for year in years.0..=years.1 {
        let Some(season) = db.seasons.get(&year) else { continue };
        let top: Vec<_> = season.driver_standings.iter().take(TOP_DRIVERS).filter(|s| s.position.is_some()).collect();
        let wins = season_wins(db, year);
        for s in &top {
            let n = i64::from(wins.get(&s.driver_id).copied().unwrap_or(0));
            let lo = (n - i64::try_from(rng.below(4)).unwrap_or(0)).max(0);
            let correct = n.to_string();
            let others: Vec<String> = (lo..lo + 4).filter(|v| *v != n).map(|v| v.to_string()).collect();
            out.push(Candidate {
                template: "wins_count",
                question: format!(
                    "Counting every championship Grand Prix of {year}, how many times did {} take the chequered flag first?",
                    driver_name(db, &s.driver_id)
                ),
                correct,
                distractors: [others[0].clone(), others[1].clone(), others[2].clone()],
                category: Category::Results,
                difficulty: Difficulty::Medium,
                fact_keys: vec![season_wins_key(year, &s.driver_id)],
            });
        }
        for q in quads(top.len()) {
            let items: Vec<(String, String, i64)> = q
                .iter()
                .map(|&i| {
                    let s = top[i];
                    (driver_name(db, &s.driver_id), season_wins_key(year, &s.driver_id), i64::from(wins.get(&s.driver_id).copied().unwrap_or(0)))
                })
                .collect();
            if let Some((correct, distractors, keys)) = best_of(&items, false) {
                let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
                out.push(Candidate {
                    template: "wins_compare",
                    question: format!("Comparing {}, which of them collected the most Grand Prix victories across {year}?", listing(&names)),
                    correct,
                    distractors,
                    category: Category::Results,
                    difficulty: Difficulty::Hard,
                    fact_keys: keys,
                });
            }
            let items: Vec<(String, String, i64)> = q
                .iter()
                .map(|&i| {
                    let s = top[i];
                    let pos = s.position.unwrap_or(u32::MAX);
                    (driver_name(db, &s.driver_id), standing_key(year, pos, &s.driver_id), i64::from(pos))
                })
                .collect();
            if let Some((correct, distractors, keys)) = best_of(&items, true) {
                let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
                out.push(Candidate {
                    template: "standing_order",
                    question: format!("Of {}, who was classified highest in the final {year} drivers' standings?", listing(&names)),
                    correct,
                    distractors,
                    category: Category::Standings,
                    difficulty: Difficulty::Hard,
                    fact_keys: keys,
                });
            }
            if let Some((correct, distractors, keys)) = best_of(&items, false) {
                let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
                out.push(Candidate {
                    template: "standing_lowest",
                    question: format!("Which of {} ended the {year} season lowest in the drivers' points table?", listing(&names)),
                    correct,
                    distractors,
                    category: Category::Standings,
                    difficulty: Difficulty::Hard,
                    fact_keys: keys,
                });
            }
        }
        let ctop: Vec<_> = season.constructor_standings.iter().take(TOP_CONSTRUCTORS).filter(|s| s.position.is_some()).collect();
        for q in quads(ctop.len()) {
            let items: Vec<(String, String, i64)> = q
                .iter()
                .map(|&i| {
                    let s = ctop[i];
                    let pos = s.position.unwrap_or(u32::MAX);
                    (constructor_name(db, &s.constructor_id), constructor_standing_key(year, pos, &s.constructor_id), i64::from(pos))
                })
                .collect();
            if let Some((correct, distractors, keys)) = best_of(&items, true) {
                let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
                out.push(Candidate {
                    template: "constructor_order",
                    question: format!("Of {}, which team ended {year} highest in the constructors' table?", listing(&names)),
                    correct,
                    distractors,
                    category: Category::Constructors,
                    difficulty: Difficulty::Hard,
                    fact_keys: keys,
                });
            }
        }
        // Oldest of four drivers of the season's top ten.
        for q in quads(top.len()) {
            let items: Vec<(String, String, i64)> = q
                .iter()
                .filter_map(|&i| {
                    let d = db.drivers.get(&top[i].driver_id)?;
                    let b = &d.date_of_birth;
                    Some((d.name.clone(), format!("driver_birthdate:{}", d.id), i64::from(b.year) * 10_000 + i64::from(b.month) * 100 + i64::from(b.day)))
                })
                .collect();
            if items.len() < 4 {
                continue;
            }
            if let Some((correct, distractors, keys)) = best_of(&items, true) {
                let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
                out.push(Candidate {
                    template: "birthdate_oldest",
                    question: format!("Which is the eldest of these {year} front-runners: {}?", listing(&names)),
                    correct,
                    distractors,
                    category: Category::Drivers,
                    difficulty: Difficulty::Hard,
                    fact_keys: keys,
                });
            }
        }
    }
    // Birthplaces: distractors are drivers who first raced in the period within three years.
    let by_place: Vec<(String, String, String, u16)> = period_drivers
        .iter()
        .filter_map(|(id, first)| db.drivers.get(id).map(|d| (id.clone(), d.name.clone(), d.place_of_birth.clone(), *first)))
        .collect();
    for (id, name, place, first) in &by_place {
        let pool: Vec<String> =
            by_place.iter().filter(|o| o.2 != *place && o.3.abs_diff(*first) <= 3).map(|o| o.1.clone()).collect();
        if let Some(d) = pick3(&pool, name, &mut rng) {
            out.push(Candidate {
                template: "birthplace_which",
                question: format!("Which of these Formula One drivers comes from {place} by birth?"),
                correct: name.clone(),
                distractors: d,
                category: Category::Drivers,
                difficulty: Difficulty::Easy,
                fact_keys: vec![format!("driver_birthplace:{id}")],
            });
        }
    }
    // Circuits with the most turns, four at a time among the period's circuits, a bounded
    // random sample of the combinations.
    let circuits: Vec<(String, String, i64)> = db
        .races
        .iter()
        .filter(|r| in_years(r.year))
        .map(|r| r.circuit_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|id| db.circuits.get(&id).map(|c| (c.full_name.clone(), format!("circuit_turns:{id}"), i64::from(c.turns))))
        .collect();
    let mut seen = HashSet::new();
    for _ in 0..circuits.len() * 20 {
        if circuits.len() < 4 {
            break;
        }
        let mut idx: Vec<usize> = (0..circuits.len()).collect();
        rng.shuffle(&mut idx);
        let mut q: Vec<usize> = idx[..4].to_vec();
        q.sort_unstable();
        if !seen.insert(q.clone()) {
            continue;
        }
        let items: Vec<(String, String, i64)> = q.iter().map(|&i| circuits[i].clone()).collect();
        if let Some((correct, distractors, keys)) = best_of(&items, false) {
            let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
            out.push(Candidate {
                template: "circuit_turns_most",
                question: format!("Which layout has more corners than the other three: {}?", listing(&names)),
                correct,
                distractors,
                category: Category::Circuits,
                difficulty: Difficulty::Hard,
                fact_keys: keys,
            });
        }
    }
    out
}

/// What [`select`] could do.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Selection {
    /// Candidates considered.
    pub candidates: usize,
    /// Candidates resting only on training-split facts.
    pub taught: usize,
    /// Candidates resting only on facts in no pair.
    pub untaught: usize,
    /// Dropped: facts partly taught, or in validation/test only.
    pub mixed: usize,
    /// Requested control questions.
    pub control_target: usize,
    /// Requested taught questions.
    pub taught_target: usize,
}

/// Choose `size` questions: `round(size × control_share)` control, the rest taught, round-robin
/// over templates in a seeded order, answers placed for balance. `train_facts` are the facts of
/// training-split pairs; `paired_facts` those of any pair; `provenance` maps fact keys to their
/// provenance.
pub fn select(
    candidates: Vec<Candidate>,
    size: usize,
    control_share: f64,
    train_facts: &HashSet<String>,
    paired_facts: &HashSet<String>,
    provenance: &HashMap<String, String>,
    seed: u64,
) -> (Vec<Question>, Selection) {
    let mut sel = Selection { candidates: candidates.len(), ..Selection::default() };
    let mut taught: BTreeMap<&'static str, Vec<Candidate>> = BTreeMap::new();
    let mut control: BTreeMap<&'static str, Vec<Candidate>> = BTreeMap::new();
    for c in candidates {
        if !c.fact_keys.iter().all(|k| provenance.contains_key(k)) {
            sel.mixed += 1;
        } else if c.fact_keys.iter().all(|k| train_facts.contains(k)) {
            sel.taught += 1;
            taught.entry(c.template).or_default().push(c);
        } else if c.fact_keys.iter().all(|k| !paired_facts.contains(k)) {
            sel.untaught += 1;
            control.entry(c.template).or_default().push(c);
        } else {
            sel.mixed += 1;
        }
    }
    sel.control_target = ((size as f64) * control_share).round() as usize;
    sel.taught_target = size - sel.control_target;
    let mut rng = Rng::new(seed, "benchmark-select");
    let take = |pools: BTreeMap<&'static str, Vec<Candidate>>, n: usize, rng: &mut Rng| {
        let mut pools: Vec<Vec<Candidate>> = pools.into_values().collect();
        for p in &mut pools {
            rng.shuffle(p);
        }
        let mut out = Vec::new();
        let mut stems = HashSet::new();
        while out.len() < n && pools.iter().any(|p| !p.is_empty()) {
            for p in &mut pools {
                if out.len() >= n {
                    break;
                }
                while let Some(c) = p.pop() {
                    if stems.insert(c.question.clone()) {
                        out.push(c);
                        break;
                    }
                }
            }
        }
        out
    };
    let mut chosen: Vec<(Candidate, bool)> = take(control, sel.control_target, &mut rng).into_iter().map(|c| (c, true)).collect();
    chosen.extend(take(taught, sel.taught_target, &mut rng).into_iter().map(|c| (c, false)));
    rng.shuffle(&mut chosen);
    // Answer letters: i mod 4 for i in 0..n, shuffled: each letter exactly n/4 times.
    let mut positions: Vec<usize> = (0..chosen.len()).map(|i| i % 4).collect();
    rng.shuffle(&mut positions);
    let questions = chosen
        .into_iter()
        .zip(positions)
        .enumerate()
        .map(|(i, ((c, is_control), pos))| {
            let mut wrong = c.distractors.to_vec();
            rng.shuffle(&mut wrong);
            let mut options = wrong;
            options.insert(pos, c.correct.clone());
            let provenance = c.fact_keys.iter().filter_map(|k| provenance.get(k).cloned()).collect::<Vec<_>>().join("; ");
            Question {
                id: format!("bench-{:04}", i + 1),
                question: c.question,
                options,
                answer: ["A", "B", "C", "D"][pos].to_owned(),
                answer_index: pos,
                category: c.category,
                difficulty: c.difficulty,
                fact_keys: c.fact_keys,
                control: is_control,
                template: c.template.to_owned(),
                provenance,
            }
        })
        .collect();
    (questions, sel)
}
