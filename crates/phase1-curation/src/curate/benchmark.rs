//! The multiple-choice benchmark: four options, one right, built from F1DB with templates
//! other than the training pairs' and meant to test reasoning over facts rather than recall of
//! a training sentence. Each template has a [`Kind`] — "which of these" (recognise one fact
//! among distractors of the same kind and era), counts (recall a number among near numbers),
//! comparisons and orderings (combine four facts) — and a family, its [`Category`]: results,
//! standings, drivers, constructors, circuits. [`TEMPLATES`] lists them all.
//!
//! A question is *taught* when every fact it rests on is stated by a training-split pair, and
//! *control* when none of its facts appears in any pair at all. [`candidates`] builds the
//! questions of one pool of facts (so that combinations are formed among usable facts only,
//! rather than sampled blindly and mostly discarded). [`select`] draws the configured control
//! share from the control pool and the rest from the taught pool, each by round-robin over
//! families and, within a family, over templates, with every template capped at
//! `ceil(template_cap × part)` questions of its part: a family whose templates run out of
//! facts leaves its share to the others, but no template can fill the benchmark. The control
//! part follows the taught part's template mix (so that taught and control accuracy compare
//! like with like), topped up round-robin where a control pool runs short. Answers are then
//! placed so that each letter A-D holds the answer equally often overall (exactly, when
//! the size is a multiple of four) and within one of equal inside every template.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::facts_f1db::{
    constructor_name, constructor_standing_key, driver_name, race_title, season_wins, season_wins_key, standing_key,
    Years, TOP_CONSTRUCTORS, TOP_DRIVERS,
};
use super::text::ordinal;
use super::{Category, Difficulty, Rng};
use crate::f1db::F1Db;

/// What a template asks, which fixes its difficulty (the rule on [`Difficulty`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Recognise one fact among four of the same type and era (easy).
    Which,
    /// Recall a count or a number among four near numbers (medium).
    Count,
    /// Compare four items on one measure (hard).
    Compare,
    /// Place four items in a classification (hard).
    Order,
}

impl Kind {
    /// The difficulty of every question of this kind.
    pub fn difficulty(self) -> Difficulty {
        match self {
            Kind::Which => Difficulty::Easy,
            Kind::Count => Difficulty::Medium,
            Kind::Compare | Kind::Order => Difficulty::Hard,
        }
    }
}

/// One question template: its name (as in `benchmark.jsonl`), family and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// The name.
    pub name: &'static str,
    /// The family.
    pub category: Category,
    /// What it asks.
    pub kind: Kind,
}

const fn t(name: &'static str, category: Category, kind: Kind) -> Template {
    Template { name, category, kind }
}

/// Every template, by family.
pub const TEMPLATES: [Template; 27] = [
    t("winner_which", Category::Results, Kind::Which),
    t("pole_which", Category::Results, Kind::Which),
    t("fastest_lap_which", Category::Results, Kind::Which),
    t("wins_count", Category::Results, Kind::Count),
    t("wins_total", Category::Results, Kind::Count),
    t("wins_compare", Category::Results, Kind::Compare),
    t("champion_which", Category::Standings, Kind::Which),
    t("standing_place", Category::Standings, Kind::Count),
    t("standing_order", Category::Standings, Kind::Order),
    t("standing_lowest", Category::Standings, Kind::Order),
    t("birthplace_which", Category::Drivers, Kind::Which),
    t("nationality_which", Category::Drivers, Kind::Which),
    t("birth_year", Category::Drivers, Kind::Count),
    t("birthdate_oldest", Category::Drivers, Kind::Compare),
    t("birthdate_youngest", Category::Drivers, Kind::Compare),
    t("constructor_champion_which", Category::Constructors, Kind::Which),
    t("engine_which", Category::Constructors, Kind::Which),
    t("constructor_country_which", Category::Constructors, Kind::Which),
    t("constructor_order", Category::Constructors, Kind::Order),
    t("constructor_lowest", Category::Constructors, Kind::Order),
    t("circuit_which", Category::Circuits, Kind::Which),
    t("circuit_location_which", Category::Circuits, Kind::Which),
    t("turns_count", Category::Circuits, Kind::Count),
    t("circuit_turns_most", Category::Circuits, Kind::Compare),
    t("circuit_turns_fewest", Category::Circuits, Kind::Compare),
    t("circuit_length_longest", Category::Circuits, Kind::Compare),
    t("circuit_length_shortest", Category::Circuits, Kind::Compare),
];

/// The recall and control parts' template: which driver won a race (the stems are
/// `inject::RECALL`).
pub const RECALL_TEMPLATE: Template = t("winner_recall", Category::Results, Kind::Which);

/// The reasoning part's pool: compare, order and count candidates, kept in a seeded order
/// while no fact would rest under more than `per_fact` of them, so the part's questions are
/// nearly independent.
pub fn reasoning_candidates(candidates: Vec<Candidate>, per_fact: usize, seed: u64) -> Vec<Candidate> {
    let mut pool: Vec<Candidate> = candidates.into_iter().filter(|c| c.template.kind != Kind::Which).collect();
    Rng::new(seed, "benchmark-reasoning").shuffle(&mut pool);
    let mut uses: HashMap<String, usize> = HashMap::new();
    pool.into_iter()
        .filter(|c| {
            let ok = c.fact_keys.iter().all(|k| uses.get(k).copied().unwrap_or(0) < per_fact);
            if ok {
                for k in &c.fact_keys {
                    *uses.entry(k.clone()).or_default() += 1;
                }
            }
            ok
        })
        .collect()
}

/// The template called `name`.
pub fn template(name: &str) -> Option<Template> {
    TEMPLATES.iter().copied().find(|t| t.name == name)
}

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
    /// Category (the template's family).
    pub category: Category,
    /// By the rule on [`Difficulty`] (fixed by the kind).
    pub difficulty: Difficulty,
    /// What the template asks.
    pub kind: Kind,
    /// Facts the question rests on.
    pub fact_keys: Vec<String>,
    /// True when none of those facts is in any training pair.
    pub control: bool,
    /// The benchmark part: `recall`, `control` or `reasoning` (see `inject`), each reported
    /// on its own by the evaluation.
    pub part: String,
    /// The template that made it.
    pub template: String,
    /// Provenance of the facts.
    pub provenance: String,
}

/// A question before selection and answer placement.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its template.
    pub template: Template,
    /// Stem.
    pub question: String,
    /// The right option.
    pub correct: String,
    /// Three wrong options.
    pub distractors: [String; 3],
    /// Facts it rests on.
    pub fact_keys: Vec<String>,
}

/// "A, B, C and D" in alphabetical order, so the stem says nothing about the answer.
fn listing(names: &[String]) -> String {
    let mut n = names.to_vec();
    n.sort();
    format!("{}, {}, {} and {}", n[0], n[1], n[2], n[3])
}

/// Every 4-subset of `0..n` when there are at most `limit` of them, else `limit` distinct
/// random ones (attempts bounded), each sorted.
fn quads(n: usize, limit: usize, rng: &mut Rng) -> Vec<[usize; 4]> {
    let total = if n < 4 { 0 } else { n * (n - 1) * (n - 2) * (n - 3) / 24 };
    let mut out = Vec::new();
    if total <= limit {
        for a in 0..n {
            for b in a + 1..n {
                for c in b + 1..n {
                    for d in c + 1..n {
                        out.push([a, b, c, d]);
                    }
                }
            }
        }
        return out;
    }
    let mut seen = HashSet::new();
    for _ in 0..limit * 20 {
        if out.len() >= limit {
            break;
        }
        let mut q = [0usize; 4];
        let mut idx: Vec<usize> = (0..n).collect();
        for (slot, i) in q.iter_mut().zip(0..4) {
            let j = i + rng.below(n - i);
            idx.swap(i, j);
            *slot = idx[i];
        }
        q.sort_unstable();
        if seen.insert(q) {
            out.push(q);
        }
    }
    out
}

/// Largest number of combinations one compare template draws from one group of items
/// (a season's standings, an era's drivers, the period's circuits).
const QUADS_PER_GROUP: usize = 240;

/// An item of a comparison: display name, fact key, score.
type Item = (String, String, i64);

/// Four consecutive numbers around `n` (never below `floor`), `n` among them, as strings
/// through `show`: the right answer and three distractors.
fn near_numbers(n: i64, floor: i64, rng: &mut Rng, show: impl Fn(i64) -> String) -> (String, [String; 3]) {
    let shift = i64::try_from(rng.below(4)).unwrap_or(0);
    let lo = (n - shift).max(floor);
    let others: Vec<String> = (lo..lo + 4).filter(|v| *v != n).map(&show).collect();
    (show(n), [others[0].clone(), others[1].clone(), others[2].clone()])
}

/// Builds the candidates of one fact pool.
struct Gen<'a> {
    db: &'a F1Db,
    usable: &'a HashSet<String>,
    rng: Rng,
    out: Vec<Candidate>,
    /// (template, sorted fact keys) already asked, so that one combination is asked once.
    asked: HashSet<(&'static str, Vec<String>)>,
}

impl Gen<'_> {
    fn usable(&self, key: &str) -> bool {
        self.usable.contains(key)
    }

    fn push(&mut self, name: &'static str, question: String, correct: String, distractors: [String; 3], fact_keys: Vec<String>) {
        let template = template(name).unwrap_or_else(|| panic!("template `{name}` is missing from TEMPLATES"));
        debug_assert!(fact_keys.iter().all(|k| self.usable.contains(k)));
        let mut sorted = fact_keys.clone();
        sorted.sort();
        if self.asked.insert((name, sorted)) {
            self.out.push(Candidate { template, question, correct, distractors, fact_keys });
        }
    }

    /// A "which of these" question on fact `key` when it is usable and `pool` (the same type
    /// and era) offers three distinct distractors other than `correct`.
    fn which(&mut self, name: &'static str, key: String, question: String, correct: &str, pool: &[String]) {
        if !self.usable(&key) {
            return;
        }
        let mut pool: Vec<&String> = pool.iter().filter(|p| p.as_str() != correct).collect::<BTreeSet<_>>().into_iter().collect();
        if pool.len() < 3 {
            return;
        }
        self.rng.shuffle(&mut pool);
        let d = [pool[0].clone(), pool[1].clone(), pool[2].clone()];
        self.push(name, question, correct.to_owned(), d, vec![key]);
    }

    /// Comparisons over four of `items` (usable ones only) whose score picks one winner
    /// (highest, or lowest with `min`); `stem` gets the alphabetical listing.
    fn compare(&mut self, name: &'static str, items: &[Item], min: bool, stem: impl Fn(&str) -> String) {
        let items: Vec<&Item> = items.iter().filter(|i| self.usable(&i.1)).collect();
        for q in quads(items.len(), QUADS_PER_GROUP, &mut self.rng) {
            let four: Vec<&Item> = q.iter().map(|&i| items[i]).collect();
            let score = |s: i64| if min { -s } else { s };
            let Some(best) = four.iter().map(|i| score(i.2)).max() else { continue };
            let winners: Vec<&&Item> = four.iter().filter(|i| score(i.2) == best).collect();
            if winners.len() != 1 {
                continue;
            }
            let others: Vec<String> = four.iter().filter(|i| score(i.2) != best).map(|i| i.0.clone()).collect();
            let names: Vec<String> = four.iter().map(|i| i.0.clone()).collect();
            let keys = four.iter().map(|i| i.1.clone()).collect();
            let correct = winners[0].0.clone();
            self.push(name, stem(&listing(&names)), correct, [others[0].clone(), others[1].clone(), others[2].clone()], keys);
        }
    }

    /// A count question on fact `key` with value `n`.
    fn count(&mut self, name: &'static str, key: String, question: String, n: i64, floor: i64, show: impl Fn(i64) -> String) {
        if !self.usable(&key) {
            return;
        }
        let (correct, d) = near_numbers(n, floor, &mut self.rng, show);
        self.push(name, question, correct, d, vec![key]);
    }
}

/// Every candidate question of the period whose facts are all in `usable` (the taught or the
/// control pool), in a fixed order for a seed. `salt` separates the pools' random streams.
pub fn candidates(db: &F1Db, years: Years, seed: u64, usable: &HashSet<String>, salt: &str) -> Vec<Candidate> {
    let mut g = Gen { db, usable, rng: Rng::new(seed, &format!("benchmark-distractors:{salt}")), out: Vec::new(), asked: HashSet::new() };
    races(&mut g, years);
    seasons(&mut g, years);
    drivers(&mut g, years);
    constructors(&mut g, years);
    circuits(&mut g, years);
    g.out
}

fn races(g: &mut Gen, years: Years) {
    let db = g.db;
    for race in db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)) {
        let t = race_title(db, race);
        let (y, n) = (race.year, race.round);
        let top: Vec<String> = race.results.iter().take(10).map(|r| driver_name(db, &r.driver_id)).collect();
        if let Some(w) = db.race_winner(race) {
            let name = driver_name(db, &w.driver_id);
            g.which("winner_which", format!("race_winner:{y}:{n}"), format!("The {t} was won by which of these drivers?"), &name, &top);
        }
        if let Some(p) = race.qualifying.iter().find(|q| q.position == Some(1)) {
            let name = driver_name(db, &p.driver_id);
            let quali: Vec<String> = race.qualifying.iter().take(10).map(|q| driver_name(db, &q.driver_id)).collect();
            let stem = format!("Which of these drivers set the fastest qualifying time for the {t}?");
            g.which("pole_which", format!("race_pole:{y}:{n}"), stem, &name, &quali);
        }
        if let Some(f) = race.fastest_laps.iter().find(|f| f.position == Some(1)) {
            let name = driver_name(db, &f.driver_id);
            let stem = format!("In the {t}, which of these drivers posted the quickest single lap of the race?");
            g.which("fastest_lap_which", format!("race_fastest_lap:{y}:{n}"), stem, &name, &top);
        }
        let season_circuits: Vec<String> =
            db.races_in(y).iter().filter_map(|r| db.circuits.get(&r.circuit_id).map(|c| c.full_name.clone())).collect();
        if let Some(c) = db.circuits.get(&race.circuit_id) {
            let stem = format!("Which of these venues staged the {t}?");
            g.which("circuit_which", format!("race_circuit:{y}:{n}"), stem, &c.full_name, &season_circuits);
        }
    }
}

fn seasons(g: &mut Gen, years: Years) {
    let db = g.db;
    for year in years.0..=years.1 {
        let Some(season) = db.seasons.get(&year) else { continue };
        let top: Vec<_> = season.driver_standings.iter().take(TOP_DRIVERS).filter(|s| s.position.is_some()).collect();
        let names: Vec<String> = top.iter().map(|s| driver_name(db, &s.driver_id)).collect();
        if let Some(champ) = db.driver_champion(year) {
            let stem = format!("The {year} drivers' crown went to which of these contenders?");
            g.which("champion_which", format!("driver_champion:{year}"), stem, &driver_name(db, champ), &names);
        }
        let wins = season_wins(db, year);
        let mut by_wins = Vec::new();
        let mut by_place = Vec::new();
        for s in &top {
            let name = driver_name(db, &s.driver_id);
            let n = i64::from(wins.get(&s.driver_id).copied().unwrap_or(0));
            let stem = format!("Counting every championship Grand Prix of {year}, how many times did {name} take the chequered flag first?");
            g.count("wins_count", season_wins_key(year, &s.driver_id), stem, n, 0, |v| v.to_string());
            by_wins.push((name.clone(), season_wins_key(year, &s.driver_id), n));
            let pos = s.position.unwrap_or(u32::MAX);
            if pos > 1 {
                let stem = format!("What classification did {name} earn in the final {year} world championship table?");
                g.count("standing_place", standing_key(year, pos, &s.driver_id), stem, i64::from(pos), 1, |v| {
                    ordinal(u32::try_from(v).unwrap_or(0))
                });
            }
            by_place.push((name, standing_key(year, pos, &s.driver_id), i64::from(pos)));
        }
        // Combined wins of two of the top ten: a count resting on two facts.
        for (i, a) in by_wins.iter().enumerate() {
            for b in &by_wins[i + 1..] {
                if !(g.usable(&a.1) && g.usable(&b.1)) {
                    continue;
                }
                let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
                let stem = format!("Between them, how many {year} Grand Prix victories did {} and {} record?", first.0, second.0);
                let (correct, d) = near_numbers(a.2 + b.2, 0, &mut g.rng, |v| v.to_string());
                g.push("wins_total", stem, correct, d, vec![first.1.clone(), second.1.clone()]);
            }
        }
        g.compare("wins_compare", &by_wins, false, |l| format!("Comparing {l}, which of them collected the most Grand Prix victories across {year}?"));
        g.compare("standing_order", &by_place, true, |l| format!("Of {l}, who was classified highest in the final {year} drivers' standings?"));
        g.compare("standing_lowest", &by_place, false, |l| format!("Which of {l} ended the {year} season lowest in the drivers' points table?"));

        let ctop: Vec<_> = season.constructor_standings.iter().filter(|s| s.position.is_some()).collect();
        let cnames: Vec<String> = ctop.iter().map(|s| constructor_name(db, &s.constructor_id)).collect();
        if let Some(champ) = db.constructor_champion(year) {
            let stem = format!("Which of these outfits finished the {year} season on top of the teams' classification?");
            g.which("constructor_champion_which", format!("constructor_champion:{year}"), stem, &constructor_name(db, champ), &cnames);
        }
        let items: Vec<Item> = ctop
            .iter()
            .take(TOP_CONSTRUCTORS)
            .map(|s| {
                let pos = s.position.unwrap_or(u32::MAX);
                (constructor_name(db, &s.constructor_id), constructor_standing_key(year, pos, &s.constructor_id), i64::from(pos))
            })
            .collect();
        g.compare("constructor_order", &items, true, |l| format!("Of {l}, which team ended {year} highest in the constructors' table?"));
        g.compare("constructor_lowest", &items, false, |l| format!("Which of {l} scored the weakest {year} teams' championship result?"));
    }
}

/// The Formula One debut season (first classified race, of any year) of every driver who
/// raced in the period.
fn debuts(db: &F1Db, years: Years) -> BTreeMap<String, u16> {
    let mut first: BTreeMap<String, u16> = BTreeMap::new();
    for race in &db.races {
        for r in &race.results {
            first.entry(r.driver_id.clone()).or_insert(race.year);
        }
    }
    let active: HashSet<&String> =
        db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)).flat_map(|r| r.results.iter().map(|x| &x.driver_id)).collect();
    first.retain(|id, _| active.contains(id));
    first
}

/// The span of an era in seasons: the distractors of a "which of these" driver or team
/// question debuted at most `ERA_YEARS - 1` seasons from the answer.
const ERA_YEARS: u16 = 4;


fn drivers(g: &mut Gen, years: Years) {
    let db = g.db;
    let first = debuts(db, years);
    let people: Vec<(&String, u16)> = first.iter().map(|(id, y)| (id, *y)).filter(|(id, _)| db.drivers.contains_key(*id)).collect();
    for &(id, debut) in &people {
        let d = &db.drivers[id];
        let era = |other: &(&String, u16)| other.1.abs_diff(debut) <= ERA_YEARS - 1;
        let pool: Vec<String> =
            people.iter().filter(|o| era(o) && db.drivers[o.0].place_of_birth != d.place_of_birth).map(|o| db.drivers[o.0].name.clone()).collect();
        let stem = format!("Which of these Formula One drivers comes from {} by birth?", d.place_of_birth);
        g.which("birthplace_which", format!("driver_birthplace:{id}"), stem, &d.name, &pool);
        if let Some(c) = db.countries.get(&d.nationality_country_id) {
            let nat = c.demonym.clone().unwrap_or_else(|| c.name.clone());
            let pool: Vec<String> = people
                .iter()
                .filter(|o| era(o) && db.drivers[o.0].nationality_country_id != d.nationality_country_id)
                .map(|o| db.drivers[o.0].name.clone())
                .collect();
            let stem = format!("Which of these drivers, all Formula One debutants around {debut}, holds {nat} nationality?");
            g.which("nationality_which", format!("driver_nationality:{id}"), stem, &d.name, &pool);
        }
        let stem = format!("{} was born in which year?", d.name);
        g.count("birth_year", format!("driver_birthdate:{id}"), stem, i64::from(d.date_of_birth.year), 0, |v| v.to_string());
    }
    // Birth-date comparisons among four drivers of the study period (all raced in it).
    let items: Vec<Item> = people
        .iter()
        .map(|(id, _)| {
            let d = &db.drivers[*id];
            let b = &d.date_of_birth;
            (d.name.clone(), format!("driver_birthdate:{id}"), i64::from(b.year) * 10_000 + i64::from(b.month) * 100 + i64::from(b.day))
        })
        .collect();
    let (y0, y1) = years;
    g.compare("birthdate_oldest", &items, true, |l| format!("Which of these drivers, all racing between {y0} and {y1}, is the eldest: {l}?"));
    g.compare("birthdate_youngest", &items, false, |l| format!("Who was born most recently among {l}, all on the grid at some point in {y0}-{y1}?"));
}

fn constructors(g: &mut Gen, years: Years) {
    let db = g.db;
    let mut engines: BTreeMap<(u16, String), BTreeSet<String>> = BTreeMap::new();
    for race in db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)) {
        for r in &race.results {
            engines.entry((race.year, r.constructor_id.clone())).or_default().insert(r.engine_manufacturer_id.clone());
        }
    }
    for ((year, cid), set) in &engines {
        let (Some(c), Some(engine)) = (db.constructors.get(cid), set.iter().next().filter(|_| set.len() == 1)) else { continue };
        let Some(e) = db.engine_manufacturers.get(engine) else { continue };
        let pool: Vec<String> = engines
            .iter()
            .filter(|((y, other), s)| y == year && other != cid && !s.contains(engine))
            .filter_map(|((_, other), _)| db.constructors.get(other).map(|c| c.name.clone()))
            .collect();
        let stem = format!("Which of these {year} entrants relied on {} power?", e.name);
        g.which("engine_which", format!("constructor_engine:{year}:{cid}"), stem, &c.name, &pool);
    }
    // Each period constructor's first season of any year.
    let period: BTreeSet<&String> = engines.keys().map(|(_, c)| c).collect();
    let mut first: BTreeMap<&String, u16> = BTreeMap::new();
    for race in &db.races {
        for r in &race.results {
            if period.contains(&r.constructor_id) {
                first.entry(&r.constructor_id).or_insert(race.year);
            }
        }
    }
    for (cid, debut) in &first {
        let (Some(c), Some(country)) = (db.constructors.get(*cid), db.constructors.get(*cid).and_then(|c| db.countries.get(&c.country_id))) else {
            continue;
        };
        let pool: Vec<String> = first
            .iter()
            .filter(|(o, y)| y.abs_diff(*debut) <= ERA_YEARS - 1 && db.constructors.get(**o).is_some_and(|oc| oc.country_id != c.country_id))
            .filter_map(|(o, _)| db.constructors.get(*o).map(|oc| oc.name.clone()))
            .collect();
        let stem = format!("Which of these teams, all Formula One newcomers around {debut}, carries {}'s flag?", country.name);
        g.which("constructor_country_which", format!("constructor_country:{cid}"), stem, &c.name, &pool);
    }
}

fn circuits(g: &mut Gen, years: Years) {
    let db = g.db;
    let ids: BTreeSet<&String> = db.races.iter().filter(|r| (years.0..=years.1).contains(&r.year)).map(|r| &r.circuit_id).collect();
    let used: Vec<&crate::f1db::Circuit> = ids.into_iter().filter_map(|id| db.circuits.get(id)).collect();
    for c in &used {
        let pool: Vec<String> = used.iter().filter(|o| o.place_name != c.place_name).map(|o| o.full_name.clone()).collect();
        let stem = format!("Which of these Grand Prix tracks lies in {}?", c.place_name);
        g.which("circuit_location_which", format!("circuit_location:{}", c.id), stem, &c.full_name, &pool);
        let stem = format!("What corner count does the current layout of the {} have?", c.full_name);
        g.count("turns_count", format!("circuit_turns:{}", c.id), stem, i64::from(c.turns), 1, |v| v.to_string());
    }
    let turns: Vec<Item> = used.iter().map(|c| (c.full_name.clone(), format!("circuit_turns:{}", c.id), i64::from(c.turns))).collect();
    g.compare("circuit_turns_most", &turns, false, |l| format!("Which layout has more corners than the other three: {l}?"));
    g.compare("circuit_turns_fewest", &turns, true, |l| format!("Which of {l} has the fewest bends in its present configuration?"));
    // Lengths in metres, so that equal lengths tie exactly.
    let lengths: Vec<Item> =
        used.iter().map(|c| (c.full_name.clone(), format!("circuit_length:{}", c.id), (c.length * 1000.0).round() as i64)).collect();
    g.compare("circuit_length_longest", &lengths, false, |l| format!("Which of {l} offers the longest single lap?"));
    g.compare("circuit_length_shortest", &lengths, true, |l| format!("Around which of {l} is one tour the shortest distance?"));
}

/// Per-template accounting of [`select`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TemplateStats {
    /// The family.
    pub category: String,
    /// What it asks.
    pub kind: String,
    /// Candidates of the taught pool.
    pub taught_candidates: usize,
    /// Candidates of the control pool.
    pub control_candidates: usize,
    /// Taught questions drawn.
    pub taught: usize,
    /// Control questions drawn.
    pub control: usize,
}

/// What [`select`] could do.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Selection {
    /// Candidates resting only on training-split facts.
    pub taught_candidates: usize,
    /// Candidates resting only on facts in no pair.
    pub control_candidates: usize,
    /// Requested control questions.
    pub control_target: usize,
    /// Requested taught questions.
    pub taught_target: usize,
    /// The cap per template as a share of each part (`curation.benchmark_template_cap`).
    pub template_cap: f64,
    /// That cap in taught questions.
    pub taught_cap: usize,
    /// That cap in control questions.
    pub control_cap: usize,
    /// Per template.
    pub templates: BTreeMap<String, TemplateStats>,
}

/// The cap of one template in a part of `n` questions.
pub fn cap(share: f64, n: usize) -> usize {
    ((share * n as f64).ceil() as usize).max(1)
}

/// Draw up to `n` candidates: one per family in turn, within a family one per template in
/// turn, skipping templates at their `limit` or out of candidates, never repeating a stem.
/// Returns the drawn candidates and the rest.
fn draw(
    candidates: Vec<Candidate>,
    n: usize,
    limit: impl Fn(&str) -> usize,
    stems: &mut HashSet<String>,
    rng: &mut Rng,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let mut families: BTreeMap<Category, BTreeMap<&'static str, Vec<Candidate>>> = BTreeMap::new();
    for c in candidates {
        families.entry(c.template.category).or_default().entry(c.template.name).or_default().push(c);
    }
    let mut families: Vec<(usize, Vec<(usize, usize, Vec<Candidate>)>)> = families
        .into_values()
        .map(|ts| {
            let ts = ts
                .into_iter()
                .map(|(name, mut cs)| {
                    rng.shuffle(&mut cs);
                    (0, limit(name), cs)
                })
                .collect();
            (0, ts)
        })
        .collect();
    let mut out = Vec::new();
    'rounds: loop {
        let mut progress = false;
        for (cursor, templates) in &mut families {
            if out.len() >= n {
                break 'rounds;
            }
            for step in 0..templates.len() {
                let i = (*cursor + step) % templates.len();
                let (taken, cap, pool) = &mut templates[i];
                if *taken >= *cap {
                    continue;
                }
                let Some(c) = std::iter::from_fn(|| pool.pop()).find(|c| stems.insert(c.question.clone())) else { continue };
                *taken += 1;
                out.push(c);
                *cursor = i + 1;
                progress = true;
                break;
            }
        }
        if !progress {
            break;
        }
    }
    let rest = families.into_iter().flat_map(|(_, ts)| ts.into_iter().flat_map(|(_, _, cs)| cs)).collect();
    (out, rest)
}

/// Split `total` over templates in proportion to `counts` (largest remainders, ties by name).
fn proportional(counts: &BTreeMap<&'static str, usize>, total: usize) -> BTreeMap<&'static str, usize> {
    let sum: usize = counts.values().sum();
    if sum == 0 {
        return BTreeMap::new();
    }
    let exact: Vec<(&'static str, f64)> = counts.iter().map(|(k, v)| (*k, (*v * total) as f64 / sum as f64)).collect();
    let mut out: BTreeMap<&'static str, usize> = exact.iter().map(|(k, x)| (*k, x.floor() as usize)).collect();
    let mut order: Vec<&(&'static str, f64)> = exact.iter().collect();
    order.sort_by(|a, b| (b.1 - b.1.floor()).total_cmp(&(a.1 - a.1.floor())).then(a.0.cmp(b.0)));
    let short = total - out.values().sum::<usize>();
    for (k, _) in order.into_iter().take(short) {
        *out.entry(k).or_default() += 1;
    }
    out
}

/// Choose `size` questions: `round(size × control_share)` from the `control` pool, the rest
/// from `taught`, balanced over families and templates with each template capped at
/// `ceil(template_cap × part)` ([`draw`]); answers placed for balance overall and per
/// template. `provenance` maps fact keys to their provenance. Fewer questions come back when
/// the pools cannot fill the parts under the cap (the caller warns).
pub fn select(
    taught: Vec<Candidate>,
    control: Vec<Candidate>,
    size: usize,
    control_share: f64,
    template_cap: f64,
    provenance: &HashMap<String, String>,
    seed: u64,
) -> (Vec<Question>, Selection) {
    let mut sel = Selection {
        taught_candidates: taught.len(),
        control_candidates: control.len(),
        template_cap,
        templates: TEMPLATES
            .iter()
            .map(|t| {
                let stats = TemplateStats { category: t.category.name().into(), kind: kind_name(t.kind), ..TemplateStats::default() };
                (t.name.to_owned(), stats)
            })
            .collect(),
        ..Selection::default()
    };
    for (pool, is_control) in [(&taught, false), (&control, true)] {
        for c in pool {
            let s = sel.templates.entry(c.template.name.to_owned()).or_default();
            *if is_control { &mut s.control_candidates } else { &mut s.taught_candidates } += 1;
        }
    }
    sel.control_target = ((size as f64) * control_share).round() as usize;
    sel.taught_target = size - sel.control_target;
    sel.taught_cap = cap(template_cap, sel.taught_target);
    sel.control_cap = cap(template_cap, sel.control_target);
    let mut rng = Rng::new(seed, "benchmark-select");
    let mut stems = HashSet::new();
    let (taught, _) = draw(taught, sel.taught_target, |_| sel.taught_cap, &mut stems, &mut rng);
    // Control questions follow the taught mix template by template, so that taught and control
    // accuracy compare like with like; places a template's control pool cannot fill go
    // round-robin to the others, under the same cap.
    let mut mix: BTreeMap<&'static str, usize> = BTreeMap::new();
    for c in &taught {
        *mix.entry(c.template.name).or_default() += 1;
    }
    let quota: BTreeMap<&'static str, usize> =
        proportional(&mix, sel.control_target).into_iter().map(|(t, q)| (t, q.min(sel.control_cap))).collect();
    let (mut control, rest) = draw(control, sel.control_target, |t| quota.get(t).copied().unwrap_or(0), &mut stems, &mut rng);
    if control.len() < sel.control_target {
        let mut used: BTreeMap<&'static str, usize> = BTreeMap::new();
        for c in &control {
            *used.entry(c.template.name).or_default() += 1;
        }
        let more = sel.control_target - control.len();
        let (extra, _) = draw(rest, more, |t| sel.control_cap.saturating_sub(used.get(t).copied().unwrap_or(0)), &mut stems, &mut rng);
        control.extend(extra);
    }
    let mut chosen: Vec<(Candidate, bool)> = taught.into_iter().map(|c| (c, false)).collect();
    chosen.extend(control.into_iter().map(|c| (c, true)));
    for (c, is_control) in &chosen {
        let s = sel.templates.entry(c.template.name.to_owned()).or_default();
        *if *is_control { &mut s.control } else { &mut s.taught } += 1;
    }
    // Answer letters: template by template (each shuffled), the i-th question overall gets
    // letter i mod 4, so every letter is used n/4 times overall (±1) and within every
    // template to within one; the final order is shuffled.
    let mut by_template: BTreeMap<&'static str, Vec<(Candidate, bool)>> = BTreeMap::new();
    for (c, is_control) in chosen {
        by_template.entry(c.template.name).or_default().push((c, is_control));
    }
    let mut placed: Vec<(Candidate, bool, usize)> = Vec::new();
    for mut group in by_template.into_values() {
        rng.shuffle(&mut group);
        for (c, is_control) in group {
            let pos = placed.len() % 4;
            placed.push((c, is_control, pos));
        }
    }
    rng.shuffle(&mut placed);
    let questions = placed
        .into_iter()
        .enumerate()
        .map(|(i, (c, is_control, pos))| {
            let mut options = c.distractors.to_vec();
            rng.shuffle(&mut options);
            options.insert(pos, c.correct.clone());
            let provenance = c.fact_keys.iter().filter_map(|k| provenance.get(k).cloned()).collect::<Vec<_>>().join("; ");
            Question {
                id: format!("bench-{:04}", i + 1),
                question: c.question,
                options,
                answer: ["A", "B", "C", "D"][pos].to_owned(),
                answer_index: pos,
                category: c.template.category,
                difficulty: c.template.kind.difficulty(),
                kind: c.template.kind,
                fact_keys: c.fact_keys,
                control: is_control,
                part: if is_control { "control" } else { "taught" }.to_owned(),
                template: c.template.name.to_owned(),
                provenance,
            }
        })
        .collect();
    (questions, sel)
}

fn kind_name(k: Kind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &'static str, i: usize) -> Candidate {
        Candidate {
            template: template(name).expect("known"),
            question: format!("{name} {i}?"),
            correct: format!("right {i}"),
            distractors: [format!("a {i}"), format!("b {i}"), format!("c {i}")],
            fact_keys: vec![format!("{name}:{i}")],
        }
    }

    #[test]
    fn every_template_name_is_unique_and_every_family_has_several() {
        let names: HashSet<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), TEMPLATES.len());
        for c in [Category::Results, Category::Standings, Category::Drivers, Category::Constructors, Category::Circuits] {
            let kinds: HashSet<Kind> = TEMPLATES.iter().filter(|t| t.category == c).map(|t| t.kind).collect();
            assert!(kinds.len() >= 2 && kinds.contains(&Kind::Which), "{c:?}: {kinds:?}");
        }
    }

    #[test]
    fn a_plentiful_template_is_capped_and_families_alternate() {
        // 500 standings candidates, 10 results, 30 circuits: 60 wanted with a 25% cap.
        let mut pool: Vec<Candidate> = (0..500).map(|i| cand("standing_order", i)).collect();
        pool.extend((0..10).map(|i| cand("winner_which", i)));
        pool.extend((0..30).map(|i| cand("circuit_which", i)));
        let provenance = HashMap::new();
        let (qs, sel) = select(pool, Vec::new(), 40, 0.0, 0.25, &provenance, 1);
        let count = |n: &str| qs.iter().filter(|q| q.template == n).count();
        assert_eq!(sel.taught_cap, 10);
        assert_eq!((count("standing_order"), count("winner_which"), count("circuit_which")), (10, 10, 10));
        assert_eq!(qs.len(), 30, "the cap leaves the benchmark short rather than overfilling one template");
        let mut letters = [0; 4];
        for q in &qs {
            letters[q.answer_index] += 1;
            assert_eq!(q.options[q.answer_index], format!("right {}", &q.question.split(' ').nth(1).unwrap_or("").trim_end_matches('?')));
        }
        assert!(letters.iter().all(|n| (7..=8).contains(n)), "{letters:?}");
    }

    #[test]
    fn proportional_quotas_sum_to_the_total() {
        let counts = BTreeMap::from([("a", 120), ("b", 120), ("c", 7), ("d", 1)]);
        let q = proportional(&counts, 60);
        assert_eq!(q.values().sum::<usize>(), 60);
        assert_eq!((q["a"], q["b"]), (29, 29));
        assert!(proportional(&BTreeMap::new(), 5).is_empty());
    }

    #[test]
    fn near_numbers_contain_the_answer_and_respect_the_floor() {
        let mut rng = Rng::new(3, "t");
        for n in 0..20 {
            let (c, d) = near_numbers(n, 0, &mut rng, |v| v.to_string());
            assert_eq!(c, n.to_string());
            assert!(d.iter().all(|x| x != &c && x.parse::<i64>().is_ok_and(|v| v >= 0 && v.abs_diff(n) <= 3)), "{n}: {d:?}");
        }
    }
}
