//! `phase1-curation run`, top to bottom: load the sources ([`load_inputs`]), turn them into
//! pairs, splits and a benchmark ([`curate`], no I/O, deterministic for a seed) and write the
//! files and the data card ([`write`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::benchmark::{self, Question};
use super::card::{self, Counts, DataCard, FileHash, Injection, Stage, StageReject};
use super::config::{CurationConfig, Sources};
use super::output::{alpaca_record, chat_record, jsonl, sha256_hex, write_atomic};
use super::split::{self, Split};
use super::text::NearIndex;
use super::{facts_f1db, facts_text, inject, Category, Fact, Message, Pair, Rng};
use crate::article::{self, Article};
use crate::ergast::{self, Ergast, Reconciliation};
use crate::fetch::{self, Fetcher, Seed};
use crate::f1db::F1Db;
use crate::livetiming::{self, Session};
use crate::{Error, Reject, Result};

/// The sources, loaded.
pub struct Inputs {
    /// F1DB.
    pub db: F1Db,
    /// The archive's file name, for provenance.
    pub archive_name: String,
    /// Articles, each with its URL (or title) for provenance.
    pub articles: Vec<(String, Article)>,
    /// Live-timing sessions with their folder relative to the mirror.
    pub sessions: Vec<(String, Session)>,
    /// Rejects of the readers.
    pub rejects: Vec<StageReject>,
    /// Reader stages (files in → loaded + rejected).
    pub stages: Vec<Stage>,
    /// Input files and hashes.
    pub hashes: Vec<FileHash>,
    /// Ergast against F1DB: agreements, name matches and every disagreement.
    pub reconciliation: Reconciliation,
}

/// What [`curate`] made.
pub struct Curated {
    /// Pairs with their split, in output order.
    pub pairs: Vec<(Pair, Split)>,
    /// The benchmark.
    pub questions: Vec<Question>,
    /// Phase 3's probe: taught facts in words of their own.
    pub probe: Vec<Question>,
    /// Open questions in held-out words about taught facts (written first in `test.jsonl`).
    pub open_recall: Vec<Pair>,
    /// The hallucination probe's questions.
    pub unanswerable: Vec<inject::Unanswerable>,
    /// The card (outputs are filled in by [`write`]).
    pub card: DataCard,
}

fn rel(mirror: &Path, p: &Path) -> String {
    p.strip_prefix(mirror).unwrap_or(p).display().to_string()
}

fn hash_file(mirror: &Path, p: &Path) -> Result<FileHash> {
    let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
    Ok(FileHash { path: rel(mirror, p), bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) })
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            files_under(&p, ext, out)?;
        } else if p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(ext)) {
            out.push(p);
        }
    }
    Ok(())
}

/// Load F1DB, the articles (saved pages under `mirror`, then any `sources.crawl` URLs, fetched)
/// and the live-timing sessions, hashing every file and page read.
pub fn load_inputs(mirror: &Path, sources: &Sources) -> Result<Inputs> {
    let archive = mirror.join(&sources.f1db);
    let db = F1Db::load(&archive)?;
    let mut hashes =
        vec![FileHash { path: sources.f1db.clone(), bytes: std::fs::metadata(&archive).map_err(|e| Error::io(&archive, e))?.len(), sha256: db.source_hash.clone() }];
    let mut rejects: Vec<StageReject> =
        db.rejects.iter().map(|r| StageReject { stage: "f1db".into(), reject: r.clone() }).collect();
    let mut stages = Vec::new();

    let mut articles = Vec::new();
    if !sources.wikipedia.is_empty() {
        let wiki = mirror.join(&sources.wikipedia);
        let mut files = Vec::new();
        files_under(&wiki, ".html", &mut files)?;
        files_under(&wiki, ".tsv", &mut files)?;
        files.sort();
        for f in &files {
            hashes.push(hash_file(mirror, f)?);
        }
        let (arts, arts_rejects) = article::load_folder(&wiki);
        let html = files.iter().filter(|f| f.extension().is_some_and(|e| e == "html")).count();
        let file_rejects = arts_rejects.iter().filter(|r| r.record.is_none() && r.source.ends_with(".html")).count();
        stages.push(Stage::new("wikipedia", "html files", html, arts.len(), file_rejects));
        rejects.extend(arts_rejects.into_iter().map(|r| StageReject { stage: "wikipedia".into(), reject: r }));
        articles.extend(arts.into_iter().map(|a| (a.url.clone().unwrap_or_else(|| format!("wikipedia: {}", a.title)), a)));
    }
    if !sources.crawl.is_empty() {
        let urls = &sources.crawl.urls;
        tracing::info!(
            seeds = urls.len(),
            min_interval_ms = sources.crawl.fetch.min_interval_ms,
            cache = %sources.crawl.fetch.cache_dir.display(),
            "crawling the configured article URLs"
        );
        let mut fetcher = Fetcher::new(sources.crawl.fetch.clone())?;
        let seeds: Vec<Seed> = urls.iter().cloned().map(Seed::Url).collect();
        let crawled = fetch::crawl(&mut fetcher, &seeds);
        hashes.extend(crawled.pages.iter().map(|p| FileHash { path: p.url.clone(), bytes: p.bytes, sha256: p.sha256.clone() }));
        stages.push(Stage::new("crawl", "seed urls", urls.len(), crawled.articles.len(), crawled.rejects.len()));
        if !crawled.rejects.is_empty() {
            tracing::warn!(rejected = crawled.rejects.len(), "some article URLs gave no article; the data card lists each with its reason");
        }
        rejects.extend(crawled.rejects.into_iter().map(|r| StageReject { stage: "crawl".into(), reject: r }));
        // `crawl` extracts each page with its URL, which is its provenance.
        articles.extend(crawled.articles.into_iter().map(|a| (a.url.clone().unwrap_or_default(), a)));
    }

    let lt = mirror.join(&sources.livetiming);
    let mut streams = Vec::new();
    files_under(&lt, ".jsonStream", &mut streams)?;
    streams.sort();
    for f in &streams {
        hashes.push(hash_file(mirror, f)?);
    }
    let dirs = livetiming::discover_sessions(&lt)?;
    let mut sessions = Vec::new();
    let mut session_rejects = 0;
    for d in &dirs {
        match livetiming::load_session(d) {
            Ok(s) => {
                rejects.extend(s.rejects.iter().map(|r| StageReject { stage: "livetiming lines".into(), reject: r.clone() }));
                sessions.push((rel(mirror, d), s));
            }
            Err(e) => {
                session_rejects += 1;
                rejects.push(StageReject { stage: "livetiming".into(), reject: Reject::file(d, e.to_string()) });
            }
        }
    }
    stages.push(Stage::new("livetiming", "session folders", dirs.len(), sessions.len(), session_rejects));
    // Ergast: read only to reconcile with F1DB; the card reports every disagreement.
    let ergast_dir = mirror.join(&sources.ergast);
    for f in ergast::TABLES {
        hashes.push(hash_file(mirror, &ergast_dir.join(f))?);
    }
    let erg = Ergast::load(&ergast_dir)?;
    let rows = erg.races.len() + erg.drivers.len() + erg.results.len() + erg.driver_standings.len();
    stages.push(Stage::new("ergast", "csv rows", rows + erg.rejects.len(), rows, erg.rejects.len()));
    rejects.extend(erg.rejects.iter().map(|r| StageReject { stage: "ergast".into(), reject: r.clone() }));
    let reconciliation = ergast::reconcile(&db, &erg);
    let archive_name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("f1db.tar.gz").to_owned();
    Ok(Inputs { db, archive_name, articles, sessions, rejects, stages, hashes, reconciliation })
}

/// Drop exact and near duplicates (by question), keeping the first; each dropped pair becomes
/// a reject naming the pair it duplicates.
pub fn dedup(pairs: Vec<Pair>, threshold: f64, source: &str) -> (Vec<Pair>, Vec<Reject>) {
    let mut index = NearIndex::default();
    let mut kept: Vec<Pair> = Vec::new();
    let mut rejects = Vec::new();
    for p in pairs {
        if let Some(hit) = index.nearest(&p.question, threshold) {
            let reason = if hit.similarity >= 1.0 {
                format!("exact duplicate of {}", kept[hit.index].id)
            } else {
                format!("near duplicate of {} (question shingle Jaccard {:.2})", kept[hit.index].id, hit.similarity)
            };
            rejects.push(Reject::record(source, p.id, reason));
        } else {
            index.insert(&p.question);
            kept.push(p);
        }
    }
    (kept, rejects)
}

/// Choose fact groups until the pairs reach `target` (0 = all): seeded shuffle within each
/// category, then always from the category with the fewest pairs so far, so categories stay
/// balanced until the small ones run out.
pub fn select_facts(facts: &[Fact], target: usize, seed: u64) -> Vec<&Fact> {
    let mut groups: BTreeMap<Category, BTreeMap<&str, Vec<&Fact>>> = BTreeMap::new();
    for f in facts {
        groups.entry(f.category).or_default().entry(f.group.as_str()).or_default().push(f);
    }
    let mut queues: BTreeMap<Category, Vec<Vec<&Fact>>> = groups
        .into_iter()
        .map(|(c, g)| {
            let mut v: Vec<Vec<&Fact>> = g.into_values().collect();
            Rng::new(seed, &format!("select:{}", c.name())).shuffle(&mut v);
            v.reverse();
            (c, v)
        })
        .collect();
    let mut taken: BTreeMap<Category, usize> = queues.keys().map(|c| (*c, 0)).collect();
    let mut out = Vec::new();
    let mut total = 0;
    while target == 0 || total < target {
        let Some(cat) = queues.iter().filter(|(_, q)| !q.is_empty()).map(|(c, _)| *c).min_by_key(|c| (taken[c], *c)) else {
            break;
        };
        let group = queues.get_mut(&cat).and_then(Vec::pop).unwrap_or_default();
        let n: usize = group.iter().map(|f| f.questions.len()).sum();
        total += n;
        *taken.entry(cat).or_default() += n;
        out.extend(group);
    }
    out
}

fn count<'a>(keys: impl Iterator<Item = String> + 'a) -> Counts {
    let mut c = Counts::new();
    for k in keys {
        *c.entry(k).or_default() += 1;
    }
    c
}

fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Pair counts for the card.
pub fn pair_counts(card: &mut DataCard, pairs: &[(Pair, Split)]) {
    card.pairs_by_source = count(pairs.iter().map(|(p, _)| name(&p.source)));
    card.pairs_by_category = count(pairs.iter().map(|(p, _)| p.category.name().to_owned()));
    card.pairs_by_difficulty = count(pairs.iter().map(|(p, _)| name(&p.difficulty)));
    card.pairs_by_split = count(pairs.iter().map(|(_, s)| s.name().to_owned()));
    card.pairs_by_category_split = count(pairs.iter().map(|(p, s)| format!("{}/{}", p.category.name(), s.name())));
}

/// An empty card for `command`.
pub fn empty_card(command: &str, config: Option<CurationConfig>) -> DataCard {
    let period_note = match &config {
        Some(c) => format!(
            "facts from {} to {} inclusive (`curation.years`): seasons a model trained on 2024-era text could know, so the \
             benchmark measures adaptation rather than news; live-timing sessions outside the range are skipped.",
            c.years[0], c.years[1]
        ),
        None => "imported data: the period is whatever the input covers.".into(),
    };
    DataCard {
        command: command.into(),
        config,
        period_note,
        difficulty_rule: "pairs: easy = the headline fact of a race or season (winner, champions, nationality, venue); medium = \
             a second-tier fact of one record (pole, championship place, season win count, birthplace, constructor country or \
             engine, circuit location, infobox field, starting tyre); hard = exact numbers, dates and details (fastest lap, \
             birth date, circuit length and turns, table cells, pit-stop laps and counts). Benchmark: easy = recognise one \
             fact among four, medium = recall a count, hard = combine four facts (comparison, ordering)."
            .into(),
        licenses: card::licenses(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        facts_available: Counts::new(),
        facts_selected: Counts::new(),
        pairs_by_source: Counts::new(),
        pairs_by_category: Counts::new(),
        pairs_by_difficulty: Counts::new(),
        pairs_by_split: Counts::new(),
        pairs_by_category_split: Counts::new(),
        benchmark_by_category: Counts::new(),
        benchmark_by_difficulty: Counts::new(),
        benchmark_by_template: Counts::new(),
        benchmark_by_kind: Counts::new(),
        benchmark_by_answer: Counts::new(),
        benchmark_by_control: Counts::new(),
        benchmark_by_part: Counts::new(),
        injection: None,
        benchmark_selection: None,
        reconciliation: None,
        leakage: None,
        stages: Vec::new(),
        rejects: Vec::new(),
    }
}

/// Facts → pairs → splits → benchmark → leakage gate. No I/O; the same inputs and config give
/// the same outputs.
pub fn curate(inputs: &Inputs, cfg: &CurationConfig) -> Result<Curated> {
    let period = cfg.period();
    let mut card = empty_card("phase1-curation run", Some(cfg.clone()));
    card.inputs = inputs.hashes.clone();
    card.stages = inputs.stages.clone();
    card.rejects = inputs.rejects.clone();
    card.reconciliation = Some(inputs.reconciliation.clone());

    // Facts.
    let mut facts = facts_f1db::facts(&inputs.db, &inputs.archive_name, period);
    let (article_facts, span_rejects) = facts_text::article_facts(&inputs.articles);
    facts.extend(article_facts);
    facts.extend(facts_text::livetiming_facts(&inputs.sessions, period));
    let candidates = facts.len() + span_rejects.len();
    card.stages.push(Stage::new("facts", "candidate facts", candidates, facts.len(), span_rejects.len()));
    card.rejects.extend(span_rejects.into_iter().map(|r| StageReject { stage: "facts".into(), reject: r }));
    let mut seen = HashSet::new();
    for f in &facts {
        if !seen.insert(f.key.as_str()) {
            return Err(Error::Curation { stage: "facts".into(), reason: format!("fact key `{}` is made twice; a bug in a fact builder", f.key) });
        }
        debug_assert!(f.answer.contains(&f.value), "{}: answer lacks its value", f.key);
    }
    card.facts_available = count(facts.iter().map(|f| f.category.name().to_owned()));
    let (n_recall, n_control, n_reasoning) = cfg.benchmark_mix.sizes(cfg.benchmark);
    let system = cfg.system_prompt.as_str();

    // Taught and control race winners (see `inject`): no other pair may state a race winner.
    let wins = inject::win_facts(&inputs.db, &inputs.archive_name, period);
    let (taught, control) = inject::choose(&wins, n_recall, n_control, cfg.seed);
    if taught.len() < n_recall || control.len() < n_control {
        return Err(Error::Curation {
            stage: "inject".into(),
            reason: format!(
                "the period has {} races with one winner; {n_recall} taught + {n_control} control facts were asked for \
                 (lower curation.benchmark or widen curation.years)",
                wins.len()
            ),
        });
    }

    // Every other fact family (standings, win counts, drivers, constructors, circuits, articles,
    // live timing: the reasoning part's facts among them), selected by group up to `pairs`, with
    // the system turn. Race winners are left out so that only the taught ones are stated.
    // The reasoning part's fact families take two thirds of the budget, the rest the remainder.
    let (reasoning_pool, other_pool): (Vec<Fact>, Vec<Fact>) = facts
        .iter()
        .filter(|f| !f.key.starts_with(inject::FACT_PREFIX))
        .cloned()
        .partition(|f| REASONING_FACTS.iter().any(|p| f.key.starts_with(p)));
    let reasoning_budget = if cfg.pairs == 0 { 0 } else { (cfg.pairs * 2 / 3).max(1) };
    let mut selected = select_facts(&reasoning_pool, reasoning_budget, cfg.seed);
    let taken: usize = selected.iter().map(|f| f.questions.len()).sum();
    if cfg.pairs == 0 || taken < cfg.pairs {
        selected.extend(select_facts(&other_pool, if cfg.pairs == 0 { 0 } else { cfg.pairs - taken }, cfg.seed));
    }
    card.facts_selected = count(selected.iter().map(|f| f.category.name().to_owned()));
    *card.facts_selected.entry("results (taught race winners)".into()).or_default() += taught.len();
    let mut generated: Vec<Pair> = selected.iter().flat_map(|f| f.pairs()).map(|p| with_system(p, system)).collect();
    let n_support = generated.len();
    let mut rng = Rng::new(cfg.seed, "inject:renderings");
    let recall_pairs: Vec<Pair> = taught.iter().flat_map(|f| inject::renderings(f, cfg.renderings, system, &mut rng)).collect();
    let n_recall_pairs = recall_pairs.len();
    // Abstention: `abstention_share` of the training pairs (support pairs train at about 80%).
    let expected_train = n_recall_pairs + n_support * 4 / 5;
    let n_abstain = ((expected_train as f64) * cfg.abstention_share / (1.0 - cfg.abstention_share)).round() as usize;
    generated.extend(inject::abstention_pairs(n_abstain, period.1, system, cfg.seed));

    // Pairs, deduplicated: near duplicates among the other facts and abstention; renderings of
    // taught facts only when identical (a reverse question for the same driver and circuit in
    // two seasons differs by the year alone, and both are facts to teach).
    let n_generated = generated.len() + recall_pairs.len();
    let (mut pairs, mut dup_rejects) = dedup(generated, cfg.near_duplicate, "pairs");
    let (recall_kept, recall_rejects) = dedup(recall_pairs, 1.0, "pairs");
    pairs.extend(recall_kept);
    dup_rejects.extend(recall_rejects);
    card.stages.push(Stage::new("pairs", "pairs", n_generated, pairs.len(), dup_rejects.len()));
    card.rejects.extend(dup_rejects.into_iter().map(|r| StageReject { stage: "pairs".into(), reject: r }));

    // Split: the reasoning facts 80/10/10 by group; taught renderings and abstention all train.
    let always_train = |p: &Pair| p.id.starts_with(inject::FACT_PREFIX) || p.id.starts_with("abstain:");
    let support_pairs: Vec<Pair> = pairs.iter().filter(|p| !always_train(p)).cloned().collect();
    let assignment = split::assign(&support_pairs, cfg.seed);
    let n_pairs = pairs.len();
    let mut with_split: Vec<(Pair, Split)> = pairs
        .into_iter()
        .map(|p| {
            let s = if always_train(&p) { Split::Train } else { assignment.get(&p.group).copied().unwrap_or(Split::Train) };
            (p, s)
        })
        .collect();
    with_split.sort_by_key(|(_, s)| *s);
    card.stages.push(Stage::new("split", "pairs", n_pairs, with_split.len(), 0));
    pair_counts(&mut card, &with_split);

    // Benchmark: recall and control (one question per fact, the same templates), then
    // reasoning over taught facts.
    let train_facts: HashSet<String> =
        with_split.iter().filter(|(_, s)| *s == Split::Train).flat_map(|(p, _)| p.fact_keys.clone()).collect();
    let paired_facts: HashSet<String> = with_split.iter().flat_map(|(p, _)| p.fact_keys.clone()).collect();
    if let Some(f) = control.iter().find(|f| paired_facts.contains(&f.key)) {
        return Err(Error::Curation { stage: "inject".into(), reason: format!("control fact `{}` is stated by a pair; a bug in the selection", f.key) });
    }
    let mut provenance: HashMap<String, String> = facts.iter().map(|f| (f.key.clone(), f.provenance.clone())).collect();
    provenance.extend(wins.iter().map(|f| (f.key.clone(), f.provenance.clone())));
    let mut taught_wins: BTreeMap<String, usize> = BTreeMap::new();
    for f in &taught {
        *taught_wins.entry(f.winner.clone()).or_default() += 1;
    }
    let recall_candidates = |fs: &[inject::WinFact], salt: &str| -> Vec<benchmark::Candidate> {
        let mut rng = Rng::new(cfg.seed, salt);
        fs.iter()
            .enumerate()
            .map(|(i, f)| {
                let (question, correct, distractors) = inject::question(f, inject::RECALL[i % inject::RECALL.len()], Some(&taught_wins), &mut rng);
                benchmark::Candidate { template: benchmark::RECALL_TEMPLATE, question, correct, distractors, fact_keys: vec![f.key.clone()] }
            })
            .collect()
    };
    // Recall and control are drawn apart so each part's letters are balanced on their own.
    let (mut questions, mut selection) =
        benchmark::select(recall_candidates(&taught, "inject:recall"), Vec::new(), taught.len(), 0.0, 1.0, &provenance, cfg.seed);
    let (control_questions, control_selection) =
        benchmark::select(recall_candidates(&control, "inject:control"), Vec::new(), control.len(), 0.0, 1.0, &provenance, cfg.seed ^ 1);
    selection.control_candidates = control_selection.taught_candidates;
    selection.control_target = control_selection.taught_target;
    selection.control_cap = control_selection.taught_cap;
    for (name, t) in control_selection.templates {
        let s = selection.templates.entry(name).or_default();
        s.control_candidates += t.taught_candidates;
        s.control += t.taught;
    }
    for q in &mut questions {
        q.part = "recall".into();
    }
    questions.extend(control_questions.into_iter().map(|q| Question { control: true, part: "control".into(), ..q }));
    let reasoning_pool = benchmark::reasoning_candidates(
        benchmark::candidates(&inputs.db, period, cfg.seed, &train_facts, "taught"),
        MAX_QUESTIONS_PER_FACT,
        cfg.seed,
    );
    let (mut reasoning, _) = benchmark::select(reasoning_pool, Vec::new(), n_reasoning, 0.0, cfg.benchmark_template_cap, &provenance, cfg.seed);
    for q in &mut reasoning {
        q.part = "reasoning".into();
    }
    questions.extend(reasoning);
    // One seeded order over the parts, so a prefix of the file (`evaluation.max_questions`)
    // samples every part.
    Rng::new(cfg.seed, "benchmark-order").shuffle(&mut questions);
    for (i, q) in questions.iter_mut().enumerate() {
        q.id = format!("bench-{:04}", i + 1);
    }
    if questions.len() < cfg.benchmark {
        tracing::warn!(
            wanted = cfg.benchmark,
            got = questions.len(),
            cap = cfg.benchmark_template_cap,
            "fewer benchmark questions than asked for: the reasoning part's candidates under the per-template and per-fact caps ran \
             out (raise curation.pairs or curation.benchmark_template_cap, or lower curation.benchmark)"
        );
    }
    card.stages.push(Stage::new("benchmark", "drawn questions", questions.len(), questions.len(), 0));
    card.benchmark_by_category = count(questions.iter().map(|q| q.category.name().to_owned()));
    card.benchmark_by_difficulty = count(questions.iter().map(|q| name(&q.difficulty)));
    card.benchmark_by_template = count(questions.iter().map(|q| q.template.clone()));
    card.benchmark_by_kind = count(questions.iter().map(|q| name(&q.kind)));
    card.benchmark_by_answer = count(questions.iter().map(|q| q.answer.clone()));
    card.benchmark_by_control = count(questions.iter().map(|q| if q.control { "control" } else { "taught" }.to_owned()));
    card.benchmark_by_part = count(questions.iter().map(|q| q.part.clone()));
    card.benchmark_selection = Some(selection);

    // The probe (phase 3), open questions on taught facts and unanswerable questions.
    let mut order: Vec<&inject::WinFact> = taught.iter().collect();
    Rng::new(cfg.seed, "inject:probe").shuffle(&mut order);
    let mut rng = Rng::new(cfg.seed, "inject:probe-options");
    let probe: Vec<Question> = order
        .iter()
        .take(cfg.probe)
        .enumerate()
        .map(|(i, f)| {
            // The probe keeps random front runners (phase 3's input; see `inject::question`).
            let (question, correct, distractors) = inject::question(f, inject::PROBE[i % inject::PROBE.len()], None, &mut rng);
            probe_question(i, question, correct, distractors, f, provenance.get(&f.key).cloned().unwrap_or_default())
        })
        .collect();
    let open_recall: Vec<Pair> = order
        .iter()
        .rev()
        .take(cfg.open_recall)
        .enumerate()
        .map(|(i, f)| {
            let mut p = inject::renderings(f, 1, system, &mut Rng::new(0, "unused")).remove(0);
            p.id = format!("{}#open{}", f.key, i % inject::OPEN.len() + 1);
            p.question = inject::fill(inject::OPEN[i % inject::OPEN.len()], f);
            p.answer = inject::fill(inject::TRAIN[0].1, f);
            with_system(Pair { messages: None, ..p }, system)
        })
        .collect();
    let unanswerable = inject::unanswerable(cfg.unanswerable, period.1, cfg.seed);
    let train_words: usize = with_split
        .iter()
        .filter(|(_, s)| *s == Split::Train)
        .map(|(p, _)| p.messages.as_ref().map_or_else(|| format!("{} {}", p.question, p.answer), |m| m.iter().map(|x| x.content.as_str()).collect::<Vec<_>>().join(" ")))
        .map(|t| t.split_whitespace().count())
        .sum();
    let train_count = |pred: &dyn Fn(&Pair) -> bool| with_split.iter().filter(|(p, s)| *s == Split::Train && pred(p)).count();
    card.injection = Some(Injection {
        taught_facts: taught.len(),
        control_facts: control.len(),
        renderings_per_fact: cfg.renderings,
        recall_pairs: train_count(&|p| p.id.starts_with(inject::FACT_PREFIX)),
        reasoning_pairs: train_count(&|p| !always_train(p)),
        abstention_pairs: train_count(&|p| p.id.starts_with("abstain:")),
        train_pairs: train_count(&|_| true),
        train_words_per_epoch: train_words,
        train_tokens_per_epoch: cfg.tokenizer_model.as_deref().and_then(|m| train_tokens(m, with_split.iter().filter(|(_, s)| *s == Split::Train).map(|(p, _)| p))),
        probe_questions: probe.len(),
        open_recall_questions: open_recall.len(),
        unanswerable_by_kind: count(unanswerable.iter().map(|u| u.kind.clone())),
        system_prompt: system.to_string(),
    });

    // Leakage gate: against every pair, whatever its split.
    let bench_text: Vec<(String, String)> =
        questions.iter().chain(&probe).map(|q| (q.question.clone(), format!("{} {}", q.question, q.options.join(" ")))).collect();
    let train_text: Vec<(String, String)> =
        with_split.iter().map(|(p, _)| (p.question.clone(), format!("{} {}", p.question, p.answer))).collect();
    card.leakage = Some(super::leakage::gate(&bench_text, &train_text, cfg.leakage)?);
    card.check()?;
    Ok(Curated { pairs: with_split, questions, probe, open_recall, unanswerable, card })
}

/// Key prefixes of the facts the reasoning part's templates combine or count.
pub const REASONING_FACTS: [&str; 8] = [
    "driver_season_wins:",
    "driver_champion:",
    "driver_standing:",
    "constructor_champion:",
    "constructor_standing:",
    "driver_birthdate:",
    "circuit_turns:",
    "circuit_length:",
];

/// Largest number of questions of one part that rest on the same fact, so that a part's items
/// are nearly independent (the evaluation still resamples by fact cluster).
pub const MAX_QUESTIONS_PER_FACT: usize = 2;

/// A pair with the study's system turn as its first message (none when `system` is empty).
pub fn with_system(p: Pair, system: &str) -> Pair {
    if system.is_empty() || p.messages.is_some() {
        return p;
    }
    let messages = vec![
        Message { role: "system".into(), content: system.into() },
        Message { role: "user".into(), content: p.question.clone() },
        Message { role: "assistant".into(), content: p.answer.clone() },
    ];
    Pair { messages: Some(messages), ..p }
}

fn probe_question(i: usize, question: String, correct: String, distractors: [String; 3], f: &inject::WinFact, provenance: String) -> Question {
    // Letters in turn (A, B, C, D, A, ...) so the probe's answers are balanced.
    let pos = i % 4;
    let mut options = distractors.to_vec();
    options.insert(pos, correct);
    Question {
        id: format!("probe-{:03}", i + 1),
        question,
        options,
        answer: ["A", "B", "C", "D"][pos].to_owned(),
        answer_index: pos,
        category: Category::Results,
        difficulty: super::Difficulty::Easy,
        kind: benchmark::Kind::Which,
        fact_keys: vec![f.key.clone()],
        control: false,
        part: "probe".into(),
        template: "winner_probe".into(),
        provenance,
    }
}

/// Write the pair files (chat and Alpaca per split), the benchmark (when any), the resolved
/// config (when any) and the data card into `dir`, atomically; the card lists the others'
/// hashes.
pub fn write(curated: &mut Curated, dir: &Path) -> Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for split in Split::ALL {
        let mut pairs: Vec<(&Pair, &str)> = Vec::new();
        if split == Split::Test {
            // Open questions: held-out words about taught facts first, then unseen facts.
            pairs.extend(curated.open_recall.iter().map(|p| (p, "recall")));
        }
        pairs.extend(curated.pairs.iter().filter(|(_, s)| *s == split).map(|(p, _)| (p, "unseen")));
        let tagged = |record: serde_json::Value, part: &str| -> serde_json::Value {
            match record {
                serde_json::Value::Object(mut m) if split == Split::Test && curated.card.config.is_some() => {
                    m.insert("part".into(), serde_json::json!(part));
                    serde_json::Value::Object(m)
                }
                other => other,
            }
        };
        let chat = format!("{}.jsonl", split.name());
        let bytes = jsonl(&dir.join(&chat), &pairs.iter().map(|(p, part)| tagged(chat_record(p), part)).collect::<Vec<_>>())?;
        files.push((chat, bytes));
        let alpaca = format!("{}.alpaca.jsonl", split.name());
        let bytes = jsonl(&dir.join(&alpaca), &pairs.iter().map(|(p, part)| tagged(alpaca_record(p), part)).collect::<Vec<_>>())?;
        files.push((alpaca, bytes));
    }
    if curated.card.config.is_some() {
        files.push(("benchmark.jsonl".into(), jsonl(&dir.join("benchmark.jsonl"), &curated.questions)?));
        files.push(("probe.jsonl".into(), jsonl(&dir.join("probe.jsonl"), &curated.probe)?));
        files.push(("unanswerable.jsonl".into(), jsonl(&dir.join("unanswerable.jsonl"), &curated.unanswerable)?));
    }
    if let Some(cfg) = &curated.card.config {
        let yaml = serde_yaml::to_string(&serde_json::json!({ "curation": cfg }))
            .map_err(|e| Error::Curation { stage: "write".into(), reason: e.to_string() })?;
        files.push(("resolved_config.yaml".into(), yaml.into_bytes()));
    }
    curated.card.outputs =
        files.iter().map(|(n, b)| FileHash { path: n.clone(), bytes: b.len() as u64, sha256: sha256_hex(b) }).collect();
    curated.card.check()?;
    let json = serde_json::to_vec_pretty(&curated.card).map_err(|e| Error::Curation { stage: "write".into(), reason: e.to_string() })?;
    files.push(("data_card.json".into(), json));
    files.push(("data_card.md".into(), curated.card.markdown().into_bytes()));
    for (n, b) in &files {
        write_atomic(&dir.join(n), b)?;
    }
    Ok(())
}

/// Tokens of `pairs` as the model at `model` sees them in training (its chat template, system
/// turn, reply and end token), or `None` with a note when the model cannot be read here (a hub
/// id, or not fetched yet): the data card then says it was not counted.
pub fn train_tokens<'a>(model: &Path, pairs: impl Iterator<Item = &'a Pair>) -> Option<usize> {
    if !model.exists() {
        tracing::info!(model = %model.display(), "training tokens per epoch not counted: the base model is not a local file here");
        return None;
    }
    let (tok, template) = match f1_core::load_tokenizer(model, None) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(model = %model.display(), error = %e, "training tokens per epoch not counted: cannot read the model's tokenizer");
            return None;
        }
    };
    let mut total = 0;
    for p in pairs {
        let conv: Vec<f1_core::ChatMessage> = match &p.messages {
            Some(m) => m.iter().map(|x| f1_core::ChatMessage::new(x.role.clone(), x.content.clone())).collect(),
            None => vec![f1_core::ChatMessage::user(p.question.clone()), f1_core::ChatMessage::assistant(p.answer.clone())],
        };
        let ids = template.render(&conv, false).and_then(|text| f1_core::generate::encode_prompt(&tok, &text));
        match ids {
            Ok(ids) => total += ids.len(),
            Err(e) => {
                tracing::warn!(pair = %p.id, error = %e, "training tokens per epoch not counted: a pair does not render");
                return None;
            }
        }
    }
    Some(total)
}

/// Load, curate and write into `out/curated/`.
pub fn run(cfg: &CurationConfig, mirror: &Path, out: &Path) -> Result<Curated> {
    let inputs = load_inputs(mirror, &cfg.sources)?;
    let mut curated = curate(&inputs, cfg)?;
    write(&mut curated, &out.join("curated"))?;
    Ok(curated)
}
