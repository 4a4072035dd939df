//! `phase1-curation run`, top to bottom: load the sources ([`load_inputs`]), turn them into
//! pairs, splits and a benchmark ([`curate`], no I/O, deterministic for a seed) and write the
//! files and the data card ([`write`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::benchmark::{self, Question};
use super::card::{self, Counts, DataCard, FileHash, Stage, StageReject};
use super::config::{CurationConfig, Sources};
use super::output::{alpaca_record, chat_record, jsonl, sha256_hex, write_atomic};
use super::split::{self, Split};
use super::text::NearIndex;
use super::{facts_f1db, facts_text, Category, Fact, Pair, Rng, Source};
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
    let selected = select_facts(&facts, cfg.pairs, cfg.seed);
    card.facts_selected = count(selected.iter().map(|f| f.category.name().to_owned()));

    // Pairs, deduplicated.
    let generated: Vec<Pair> = selected.iter().flat_map(|f| f.pairs()).collect();
    let n_generated = generated.len();
    let (pairs, dup_rejects) = dedup(generated, cfg.near_duplicate, "pairs");
    card.stages.push(Stage::new("pairs", "pairs", n_generated, pairs.len(), dup_rejects.len()));
    card.rejects.extend(dup_rejects.into_iter().map(|r| StageReject { stage: "pairs".into(), reject: r }));

    // Split by group.
    let assignment = split::assign(&pairs, cfg.seed);
    let n_pairs = pairs.len();
    let mut with_split: Vec<(Pair, Split)> =
        pairs.into_iter().map(|p| {
            let s = assignment.get(&p.group).copied().unwrap_or(Split::Train);
            (p, s)
        }).collect();
    with_split.sort_by_key(|(_, s)| *s);
    card.stages.push(Stage::new("split", "pairs", n_pairs, with_split.len(), 0));
    pair_counts(&mut card, &with_split);

    // Benchmark.
    let train_facts: HashSet<String> =
        with_split.iter().filter(|(_, s)| *s == Split::Train).flat_map(|(p, _)| p.fact_keys.clone()).collect();
    let paired_facts: HashSet<String> = with_split.iter().flat_map(|(p, _)| p.fact_keys.clone()).collect();
    let provenance: HashMap<String, String> = facts.iter().map(|f| (f.key.clone(), f.provenance.clone())).collect();
    // Control facts: facts of the period that no pair of any split states.
    let control_facts: HashSet<String> =
        facts.iter().filter(|f| f.source == Source::F1db && !paired_facts.contains(&f.key)).map(|f| f.key.clone()).collect();
    let taught_candidates = benchmark::candidates(&inputs.db, period, cfg.seed, &train_facts, "taught");
    let control_candidates = benchmark::candidates(&inputs.db, period, cfg.seed, &control_facts, "control");
    let (questions, selection) = benchmark::select(
        taught_candidates,
        control_candidates,
        cfg.benchmark,
        cfg.control_share,
        cfg.benchmark_template_cap,
        &provenance,
        cfg.seed,
    );
    if questions.len() < cfg.benchmark {
        tracing::warn!(
            wanted = cfg.benchmark,
            got = questions.len(),
            cap = cfg.benchmark_template_cap,
            "fewer benchmark questions than asked for: the templates' candidates under the per-template cap ran out \
             (raise curation.pairs or curation.benchmark_template_cap, or lower curation.benchmark)"
        );
    }
    card.stages.push(Stage::new("benchmark", "drawn questions", questions.len(), questions.len(), 0));
    card.benchmark_by_category = count(questions.iter().map(|q| q.category.name().to_owned()));
    card.benchmark_by_difficulty = count(questions.iter().map(|q| name(&q.difficulty)));
    card.benchmark_by_template = count(questions.iter().map(|q| q.template.clone()));
    card.benchmark_by_kind = count(questions.iter().map(|q| name(&q.kind)));
    card.benchmark_by_answer = count(questions.iter().map(|q| q.answer.clone()));
    card.benchmark_by_control = count(questions.iter().map(|q| if q.control { "control" } else { "taught" }.to_owned()));
    card.benchmark_selection = Some(selection);

    // Leakage gate: against every pair, whatever its split.
    let bench_text: Vec<(String, String)> =
        questions.iter().map(|q| (q.question.clone(), format!("{} {}", q.question, q.options.join(" ")))).collect();
    let train_text: Vec<(String, String)> =
        with_split.iter().map(|(p, _)| (p.question.clone(), format!("{} {}", p.question, p.answer))).collect();
    card.leakage = Some(super::leakage::gate(&bench_text, &train_text, cfg.leakage)?);
    card.check()?;
    Ok(Curated { pairs: with_split, questions, card })
}

/// Write the pair files (chat and Alpaca per split), the benchmark (when any), the resolved
/// config (when any) and the data card into `dir`, atomically; the card lists the others'
/// hashes.
pub fn write(curated: &mut Curated, dir: &Path) -> Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for split in Split::ALL {
        let pairs: Vec<&Pair> = curated.pairs.iter().filter(|(_, s)| *s == split).map(|(p, _)| p).collect();
        files.push((format!("{}.jsonl", split.name()), jsonl(&pairs.iter().map(|p| chat_record(p)).collect::<Vec<_>>())));
        files.push((format!("{}.alpaca.jsonl", split.name()), jsonl(&pairs.iter().map(|p| alpaca_record(p)).collect::<Vec<_>>())));
    }
    if curated.card.config.is_some() {
        files.push(("benchmark.jsonl".into(), jsonl(&curated.questions)));
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

/// Load, curate and write into `out/curated/`.
pub fn run(cfg: &CurationConfig, mirror: &Path, out: &Path) -> Result<Curated> {
    let inputs = load_inputs(mirror, &cfg.sources)?;
    let mut curated = curate(&inputs, cfg)?;
    write(&mut curated, &out.join("curated"))?;
    Ok(curated)
}
