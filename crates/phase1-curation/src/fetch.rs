//! Fetchers for the live upstream sources, for users with network: a polite HTTP client, a
//! crawler for article seeds, and the upstream URL of every file the mirror holds.
//!
//! [`Fetcher`] follows the conventions of well-behaved crawlers: it reads `robots.txt`
//! (RFC 9309: groups by `User-agent`, longest matching `Allow`/`Disallow` wins, `*` and `$`
//! in paths; a 4xx `robots.txt` allows everything, an unreachable one disallows everything)
//! and honours `Crawl-delay`; it spaces requests to one host by a minimum interval; it
//! retries 429, 5xx and transport errors with exponential backoff, honouring `Retry-After`
//! (seconds or HTTP date, RFC 9110 §10.2.3); it bounds connect and total time and the size
//! of a response; and it caches every page on disk (the body, plus a JSON sidecar with the
//! URL, fetch time, status, content type and sha256) and serves a re-run from that cache
//! without a request. Nothing here runs in `cargo test` against the internet: the tests
//! serve the mirror from a loopback server.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use crate::curate::output::sha256_hex;

use crate::article::{self, Article};
use crate::{Error, Reject, Result};

/// F1DB's source archive on GitHub (the mirror's `f1db-main.tar.gz`).
pub const F1DB_ARCHIVE_URL: &str = "https://github.com/f1db/f1db/archive/refs/heads/main.tar.gz";
/// Raw files of TracingInsights/RaceData `data/` (the mirror's `ergast/`).
pub const ERGAST_RAW_BASE: &str = "https://raw.githubusercontent.com/TracingInsights/RaceData/main/data/";
/// The Ergast-schema CSVs the mirror holds, by file name under [`ERGAST_RAW_BASE`].
pub const ERGAST_FILES: &[&str] = &[
    "circuits.csv",
    "constructor_results.csv",
    "constructor_standings.csv",
    "constructors.csv",
    "driver_standings.csv",
    "drivers.csv",
    "fatal_accidents_drivers.csv",
    "fatal_accidents_marshalls.csv",
    "pit_stops.csv",
    "qualifying.csv",
    "races.csv",
    "red_flags.csv",
    "results.csv",
    "safety_cars.csv",
    "seasons.csv",
    "sprint_results.csv",
    "status.csv",
];
/// Wikipedia pages of the mirror: title and the revision it holds (its `_PAGES.tsv`).
/// URLs are permanent revision links ([`wikipedia_url`]), so a fetch today gets the same text.
pub const WIKIPEDIA_PAGES: &[(&str, u64)] = &[
    ("107% rule", 1195769632),
    ("1950 Formula One season", 1172627227),
    ("1976 Formula One season", 1191847147),
    ("1994 San Marino Grand Prix", 1194060382),
    ("2014 Japanese Grand Prix", 1181779631),
    ("2019 Canadian Grand Prix", 1174264597),
    ("2021 Abu Dhabi Grand Prix", 1190366466),
    ("2021 Saudi Arabian Grand Prix", 1193340756),
    ("2022 Italian Grand Prix", 1178881289),
    ("2023 Formula One World Championship", 1197754783),
    ("2023 Las Vegas Grand Prix", 1197609920),
    ("2024 Formula One World Championship", 1198232550),
    ("Albert Park Circuit", 1193205371),
    ("Alpine F1 Team", 1197261268),
    ("Azerbaijan Grand Prix", 1192990438),
    ("Bahrain International Circuit", 1193647161),
    ("Baku City Circuit", 1193204534),
    ("Bargeboard (aerodynamics)", 1164492090),
    ("Brabham BT46B", 1188760692),
    ("Brabham", 1187950890),
    ("Brawn GP", 1186696049),
    ("Charlie Whiting", 1187364307),
    ("Death of Ayrton Senna", 1197510198),
    ("Hamilton–Rosberg rivalry", 1190958412),
    ("Prost–Senna rivalry", 1177828219),
];
/// The F1 live-timing static API (what FastF1 reads).
pub const LIVETIMING_BASE: &str = "https://livetiming.formula1.com/static/";
/// The sessions of the mirror, as paths under [`LIVETIMING_BASE`].
pub const LIVETIMING_SESSIONS: &[&str] = &[
    "2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race/",
    "2023/2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint/",
    "2023/2023-04-30_Azerbaijan_Grand_Prix/2023-04-29_Sprint_Shootout/",
    "2025/2025-05-04_Miami_Grand_Prix/2025-05-03_Sprint/",
];
/// The streams fetched per session (`<Stream>.jsonStream`); a session without one (no
/// `LapCount` in a shootout) gives a 403/404 that [`fetch_files`] reports and skips.
pub const LIVETIMING_STREAMS: &[&str] = &[
    "DriverList",
    "LapCount",
    "RaceControlMessages",
    "SessionInfo",
    "SessionStatus",
    "TimingAppData",
    "TimingData",
    "TrackStatus",
];
/// The names [`fetch_source`] knows.
pub const SOURCES: &[&str] = &["f1db", "ergast", "wikipedia", "livetiming"];

/// How polite and how patient the fetcher is. Durations are in milliseconds so the YAML
/// config stays plain numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Sent as `User-Agent`; its first word (before `/`) is the token matched in robots.txt.
    pub user_agent: String,
    /// Where raw pages are cached (`<host>/<sha256 of URL>.body` + `.json`).
    pub cache_dir: PathBuf,
    /// Least time between two requests to one host; a larger `Crawl-delay` wins.
    pub min_interval_ms: u64,
    /// Retries after the first attempt, on 429, 5xx and transport errors.
    pub max_retries: u32,
    /// First backoff; doubled per retry.
    pub backoff_ms: u64,
    /// Cap on one wait, backoff or `Retry-After`.
    pub max_backoff_ms: u64,
    /// Connect timeout.
    pub connect_timeout_ms: u64,
    /// Total time for one request, body included.
    pub timeout_ms: u64,
    /// Largest response body accepted; a larger one is aborted.
    pub max_bytes: u64,
    /// Read and obey robots.txt (on by default; off only for hosts you own).
    pub respect_robots: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            user_agent: format!(
                "f1-llm-curation/{} (+https://github.com/f1db/f1db; research crawler)",
                env!("CARGO_PKG_VERSION")
            ),
            cache_dir: PathBuf::from("data/cache/http"),
            min_interval_ms: 1000,
            max_retries: 4,
            backoff_ms: 1000,
            max_backoff_ms: 60_000,
            connect_timeout_ms: 10_000,
            timeout_ms: 120_000,
            max_bytes: 64 << 20,
            respect_robots: true,
        }
    }
}

impl FetchConfig {
    /// The product token of `user_agent`, lowercased: `f1-llm-curation`.
    pub fn agent_token(&self) -> String {
        self.user_agent.split(['/', ' ']).next().unwrap_or_default().to_lowercase()
    }
}

/// The JSON sidecar of a cached page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheMeta {
    /// The URL asked for.
    pub url: String,
    /// When it was fetched, seconds since the Unix epoch.
    pub fetched_at: u64,
    /// HTTP status.
    pub status: u16,
    /// Lowercase hex sha256 of the body.
    pub sha256: String,
    /// `Content-Type`, when sent.
    pub content_type: Option<String>,
    /// Body length in bytes.
    pub bytes: u64,
}

/// A fetched (or cached) page.
#[derive(Clone, Debug)]
pub struct Page {
    /// What the cache sidecar holds.
    pub meta: CacheMeta,
    /// The body.
    pub body: Vec<u8>,
    /// The cached body file.
    pub body_path: PathBuf,
    /// Served from the cache, without a request.
    pub from_cache: bool,
}

/// robots.txt rules, parsed (RFC 9309).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Robots {
    groups: Vec<RobotsGroup>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RobotsGroup {
    agents: Vec<String>,
    /// `(allow, path pattern)`.
    rules: Vec<(bool, String)>,
    crawl_delay: Option<f64>,
}

/// Whether a path may be fetched, and the rule that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// May be fetched.
    pub allowed: bool,
    /// The deciding rule (`Disallow: /private`), `None` when none matched.
    pub rule: Option<String>,
}

impl Robots {
    /// Everything allowed (no robots.txt, or a 4xx one).
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// Everything disallowed (robots.txt unreachable: RFC 9309 §2.3.1.4).
    pub fn disallow_all() -> Robots {
        Robots {
            groups: vec![RobotsGroup { agents: vec!["*".into()], rules: vec![(false, "/".into())], crawl_delay: None }],
        }
    }

    /// Parse robots.txt. Unknown lines are ignored, as the RFC asks.
    pub fn parse(text: &str) -> Robots {
        let mut groups: Vec<RobotsGroup> = Vec::new();
        // A user-agent line after a rule starts a new group; consecutive ones share one.
        let mut in_agents = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let Some((key, value)) = line.split_once(':') else { continue };
            let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
            match key.as_str() {
                "user-agent" => {
                    if !in_agents || groups.is_empty() {
                        groups.push(RobotsGroup::default());
                    }
                    in_agents = true;
                    if let Some(group) = groups.last_mut() {
                        group.agents.push(value.to_ascii_lowercase());
                    }
                }
                "allow" | "disallow" | "crawl-delay" => {
                    in_agents = false;
                    let Some(group) = groups.last_mut() else { continue };
                    match key.as_str() {
                        "crawl-delay" => {
                            group.crawl_delay = value.parse().ok().filter(|d: &f64| d.is_finite() && *d >= 0.0)
                        }
                        // An empty Disallow allows everything: no rule.
                        _ if value.is_empty() => {}
                        k => group.rules.push((k == "allow", value.to_owned())),
                    }
                }
                _ => {}
            }
        }
        Robots { groups }
    }

    /// The groups for `agent`: those naming it (case-insensitive), else those for `*`.
    fn groups_for(&self, agent: &str) -> Vec<&RobotsGroup> {
        let agent = agent.to_ascii_lowercase();
        let named: Vec<_> = self.groups.iter().filter(|g| g.agents.contains(&agent)).collect();
        if !named.is_empty() {
            return named;
        }
        self.groups.iter().filter(|g| g.agents.iter().any(|a| a == "*")).collect()
    }

    /// May `agent` fetch `path` (path and query)? The longest matching pattern wins; on a
    /// tie, `Allow` wins. `/robots.txt` itself is always allowed.
    pub fn check(&self, agent: &str, path: &str) -> Verdict {
        if path == "/robots.txt" {
            return Verdict { allowed: true, rule: None };
        }
        let mut best: Option<(usize, bool, &str)> = None;
        for group in self.groups_for(agent) {
            for (allow, pattern) in &group.rules {
                if pattern_matches(pattern, path) {
                    let better = match best {
                        None => true,
                        Some((len, best_allow, _)) => {
                            pattern.len() > len || (pattern.len() == len && *allow && !best_allow)
                        }
                    };
                    if better {
                        best = Some((pattern.len(), *allow, pattern));
                    }
                }
            }
        }
        match best {
            None => Verdict { allowed: true, rule: None },
            Some((_, allow, pattern)) => Verdict {
                allowed: allow,
                rule: Some(format!("{}: {pattern}", if allow { "Allow" } else { "Disallow" })),
            },
        }
    }

    /// `Crawl-delay` for `agent`, if its groups give one (`Duration::MAX` for one too long to
    /// represent, such as `1e20`).
    pub fn crawl_delay(&self, agent: &str) -> Option<Duration> {
        self.groups_for(agent).iter().filter_map(|g| g.crawl_delay).reduce(f64::max).map(|secs| Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }
}

/// A robots.txt path pattern: a prefix, where `*` matches any run of characters and a final
/// `$` anchors the end.
fn pattern_matches(pattern: &str, path: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if last && anchored {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    !anchored || rest.is_empty()
}

/// Parse `Retry-After`: delay seconds, or an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`)
/// turned into the time left from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate: day-name, DD Mon YYYY HH:MM:SS GMT.
    let (_, rest) = value.split_once(", ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = fields[..] else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The polite HTTP client. See the module documentation.
pub struct Fetcher {
    config: FetchConfig,
    client: Client,
    robots: HashMap<String, Robots>,
    last_request: HashMap<String, Instant>,
    /// Why an origin's robots.txt could not be read (it then disallows everything).
    robots_unreadable: HashMap<String, String>,
    /// HTTP requests sent (robots.txt included), for logs and tests.
    pub requests: u64,
}

/// What one attempt gave.
enum Attempt {
    Done(StatusCode, Option<String>, Vec<u8>),
    Retry(String, Option<Duration>),
}

impl Fetcher {
    /// A fetcher with `config`; fails only if the TLS backend cannot start.
    pub fn new(config: FetchConfig) -> Result<Fetcher> {
        let client = Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| Error::Http { url: String::new(), reason: format!("cannot build the HTTP client: {e}") })?;
        Ok(Fetcher { config, client, robots: HashMap::new(), last_request: HashMap::new(), robots_unreadable: HashMap::new(), requests: 0 })
    }

    /// The configuration.
    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Where `url`'s body and sidecar are cached.
    pub fn cache_paths(&self, url: &Url) -> (PathBuf, PathBuf) {
        let host = format!("{}_{}", url.host_str().unwrap_or("local"), url.port_or_known_default().unwrap_or(0));
        let stem = sha256_hex(url.as_str().as_bytes());
        let dir = self.config.cache_dir.join(host);
        (dir.join(format!("{stem}.body")), dir.join(format!("{stem}.json")))
    }

    /// The cached page of `url`, if its body is there and matches the sidecar's sha256.
    fn cached(&self, url: &Url) -> Option<Page> {
        let (body_path, meta_path) = self.cache_paths(url);
        let meta: CacheMeta = serde_json::from_slice(&std::fs::read(&meta_path).ok()?).ok()?;
        let body = std::fs::read(&body_path).ok()?;
        (meta.url == url.as_str() && sha256_hex(&body) == meta.sha256).then_some(Page {
            meta,
            body,
            body_path,
            from_cache: true,
        })
    }

    /// Fetch `url`, from the cache when it holds it. Errors name the URL: disallowed by
    /// robots.txt, a status other than 2xx after retries, a timeout, a body over the cap.
    pub fn fetch(&mut self, url: &str) -> Result<Page> {
        let parsed = Url::parse(url).map_err(|e| Error::Http { url: url.into(), reason: format!("not a URL: {e}") })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Http { url: url.into(), reason: "only http and https are fetched".into() });
        }
        if let Some(page) = self.cached(&parsed) {
            return Ok(page);
        }
        let interval = self.check_robots(&parsed)?;
        let (status, content_type, body) = self.get(&parsed, interval)?;
        if !status.is_success() {
            return Err(Error::Http { url: url.into(), reason: format!("HTTP {status}") });
        }
        let meta = CacheMeta {
            url: parsed.as_str().to_owned(),
            fetched_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
            status: status.as_u16(),
            sha256: sha256_hex(&body),
            content_type,
            bytes: body.len() as u64,
        };
        let (body_path, meta_path) = self.cache_paths(&parsed);
        // Atomic, so a crash never leaves a half file the cache would serve.
        let write = |path: &Path, bytes: &[u8]| -> Result<()> { Ok(f1_study::fs::write_atomic(path, bytes)?) };
        write(&body_path, &body)?;
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| Error::Http { url: url.into(), reason: e.to_string() })?;
        write(&meta_path, &json)?;
        Ok(Page { meta, body, body_path, from_cache: false })
    }

    /// Check `url` against its host's robots.txt (fetched once per origin) and return the
    /// interval to keep between requests to the host.
    fn check_robots(&mut self, url: &Url) -> Result<Duration> {
        let mut interval = Duration::from_millis(self.config.min_interval_ms);
        if !self.config.respect_robots {
            return Ok(interval);
        }
        let origin = url.origin().ascii_serialization();
        if !self.robots.contains_key(&origin) {
            let robots_url =
                url.join("/robots.txt").map_err(|e| Error::Http { url: url.to_string(), reason: e.to_string() })?;
            let robots = match self.get(&robots_url, interval) {
                Ok((status, _, body)) if status.is_success() => Robots::parse(&String::from_utf8_lossy(&body)),
                Ok((status, _, _)) if status.is_client_error() => Robots::allow_all(),
                unreadable => {
                    let why = match unreadable {
                        Ok((status, _, _)) => format!("HTTP {status}"),
                        Err(Error::Http { reason, .. }) => reason,
                        Err(e) => e.to_string(),
                    };
                    self.robots_unreadable.insert(origin.clone(), why);
                    Robots::disallow_all()
                }
            };
            self.robots.insert(origin.clone(), robots);
        }
        let robots = &self.robots[&origin];
        let agent = self.config.agent_token();
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let verdict = robots.check(&agent, &path);
        if !verdict.allowed {
            let rule = verdict.rule.unwrap_or_default();
            let reason = match self.robots_unreadable.get(&origin) {
                Some(why) => format!(
                    "disallowed: {origin}/robots.txt could not be read ({why}), and an unreadable robots.txt forbids the whole host (RFC 9309); check the URL and retry when the host answers"
                ),
                None => format!("disallowed by robots.txt ({rule})"),
            };
            return Err(Error::Http { url: url.to_string(), reason });
        }
        if let Some(delay) = robots.crawl_delay(&agent) {
            // As with `Retry-After`: a host that asks for more patience than one wait may take
            // is refused with the reason, not slept on for days.
            let max = Duration::from_millis(self.config.max_backoff_ms);
            if delay > max {
                return Err(Error::Http { url: url.to_string(), reason: format!("{origin}/robots.txt asks for a Crawl-delay of {} s, more than the {} s this fetcher waits (fetch.max_backoff_ms); raise that setting, or read the files from a mirror (F1_DATA)", delay.as_secs_f64(), max.as_secs_f64()) });
            }
            interval = interval.max(delay);
        }
        Ok(interval)
    }

    /// GET with the rate limit, retries and the size cap. Returns the final status (2xx, or
    /// a status not worth retrying), content type and body.
    fn get(&mut self, url: &Url, interval: Duration) -> Result<(StatusCode, Option<String>, Vec<u8>)> {
        let host = format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(0));
        let mut last_problem = String::new();
        for attempt in 0..=self.config.max_retries {
            if let Some(last) = self.last_request.get(&host) {
                let next = *last + interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            self.last_request.insert(host.clone(), Instant::now());
            self.requests += 1;
            let wait = match self.attempt(url)? {
                Attempt::Done(status, content_type, body) => return Ok((status, content_type, body)),
                Attempt::Retry(problem, retry_after) => {
                    let max = Duration::from_millis(self.config.max_backoff_ms);
                    // A server that asks for more patience than we have is not hammered early.
                    if let Some(wait) = retry_after.filter(|w| *w > max) {
                        return Err(Error::Http {
                            url: url.to_string(),
                            reason: format!(
                                "{problem} with Retry-After {wait:?}, over max_backoff_ms ({max:?}); not retried"
                            ),
                        });
                    }
                    last_problem = problem;
                    let backoff = Duration::from_millis(self.config.backoff_ms.saturating_mul(1 << attempt.min(20)));
                    retry_after.unwrap_or(backoff).min(max)
                }
            };
            if attempt < self.config.max_retries {
                tracing::warn!(url = %url, attempt, "{last_problem}; retrying in {wait:?}");
                std::thread::sleep(wait);
            }
        }
        Err(Error::Http {
            url: url.to_string(),
            reason: format!("gave up after {} attempts: {last_problem}", self.config.max_retries + 1),
        })
    }

    /// One request. Transport errors, 429 and 5xx are retryable; a body over the cap is not.
    fn attempt(&self, url: &Url) -> Result<Attempt> {
        let too_big = |declared: Option<u64>| Error::Http {
            url: url.to_string(),
            reason: format!(
                "response{} is over the cap of {} bytes; aborted",
                declared.map(|n| format!(" of {n} bytes")).unwrap_or_default(),
                self.config.max_bytes
            ),
        };
        let response = match self.client.get(url.clone()).send() {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Ok(Attempt::Retry(format!("timed out ({} ms limit)", self.config.timeout_ms), None))
            }
            Err(e) => return Ok(Attempt::Retry(format!("request failed: {e}"), None)),
        };
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            return Ok(Attempt::Retry(format!("HTTP {status}"), retry_after));
        }
        let declared = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(n) = declared.filter(|n| *n > self.config.max_bytes) {
            return Err(too_big(Some(n)));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut body = Vec::new();
        match response.take(self.config.max_bytes + 1).read_to_end(&mut body) {
            Ok(_) if body.len() as u64 > self.config.max_bytes => Err(too_big(None)),
            Ok(_) => Ok(Attempt::Done(status, content_type, body)),
            Err(e) if is_timeout(&e) => {
                Ok(Attempt::Retry(format!("timed out reading the body ({} ms limit)", self.config.timeout_ms), None))
            }
            Err(e) => Ok(Attempt::Retry(format!("reading the body failed: {e}"), None)),
        }
    }
}

/// Whether an I/O error from a response body is reqwest's timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref().and_then(|inner| inner.downcast_ref::<reqwest::Error>()).is_some_and(reqwest::Error::is_timeout)
}

/// Where an article seed comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seed {
    /// A page to fetch.
    Url(String),
    /// A saved page on disk.
    File(PathBuf),
}

impl Seed {
    /// Every `.html` file of `dir` as a [`Seed::File`], sorted by name.
    pub fn folder(dir: &Path) -> Result<Vec<Seed>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "html" || e == "htm"))
            .collect();
        files.sort();
        Ok(files.into_iter().map(Seed::File).collect())
    }

    fn label(&self) -> String {
        match self {
            Seed::Url(u) => u.clone(),
            Seed::File(p) => p.display().to_string(),
        }
    }
}

/// What [`crawl`] gives: the articles, and every seed left out with the reason.
#[derive(Debug, Default)]
pub struct Crawl {
    /// Articles extracted, in seed order.
    pub articles: Vec<Article>,
    /// Seeds left out: disallowed, failed, not HTML, not an article.
    pub rejects: Vec<Reject>,
    /// Every page fetched (or served from the cache), in seed order: URL, status, hash.
    pub pages: Vec<CacheMeta>,
}

/// Whether a body is HTML: by content type when given, else by its first bytes.
fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    if let Some(ct) = content_type {
        let ct = ct.to_ascii_lowercase();
        return ct.starts_with("text/html") || ct.starts_with("application/xhtml+xml");
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(512)]).trim_start().to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

/// Fetch (or read) every seed once and extract its article. A seed that robots.txt
/// disallows, that fails, that is not HTML or that holds no article becomes a reject
/// naming it; nothing is retried beyond the fetcher's own policy. Links are not followed.
pub fn crawl(fetcher: &mut Fetcher, seeds: &[Seed]) -> Crawl {
    let mut out = Crawl::default();
    for seed in seeds {
        let source = seed.label();
        let (body, content_type, url) = match seed {
            Seed::Url(url) => match fetcher.fetch(url) {
                Ok(page) => {
                    out.pages.push(page.meta.clone());
                    (page.body, page.meta.content_type, Some(url.as_str()))
                }
                Err(e) => {
                    let reason = match e {
                        Error::Http { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    out.rejects.push(Reject::new(source, reason));
                    continue;
                }
            },
            Seed::File(path) => match std::fs::read(path) {
                Ok(body) => (body, None, None),
                Err(e) => {
                    out.rejects.push(Reject::file(path, e.to_string()));
                    continue;
                }
            },
        };
        if !is_html(content_type.as_deref(), &body) {
            let what = content_type.unwrap_or_else(|| "no content type, no HTML start tag".into());
            out.rejects.push(Reject::new(source, format!("not an HTML page ({what})")));
            continue;
        }
        match article::extract(&String::from_utf8_lossy(&body), url) {
            Ok(a) => out.articles.push(a),
            Err(reason) => out.rejects.push(Reject::new(source, format!("no article: {reason}"))),
        }
    }
    out
}

/// The page of one Wikipedia revision as a desktop browser gets it:
/// `https://en.wikipedia.org/wiki/Brabham?oldid=1187950890`. Not `/w/index.php?oldid=`
/// ([`article::revision_url`], the citation form): Wikipedia's robots.txt disallows `/w/`.
pub fn wikipedia_url(title: &str, revision: u64) -> String {
    let mut encoded = String::new();
    for b in title.replace(' ', "_").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' | b',' | b':' => {
                encoded.push(b as char)
            }
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    format!("https://en.wikipedia.org/wiki/{encoded}?oldid={revision}")
}

/// One upstream file and where it goes in the mirror layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// Upstream URL.
    pub url: String,
    /// Path under the destination folder, as in the mirror (`ergast/races.csv`).
    pub path: PathBuf,
}

/// The upstream files of source `name` (one of [`SOURCES`]).
pub fn source_files(name: &str) -> Result<Vec<SourceFile>> {
    let file = |url: String, path: String| SourceFile { url, path: PathBuf::from(path) };
    Ok(match name {
        "f1db" => vec![file(F1DB_ARCHIVE_URL.into(), "f1db-main.tar.gz".into())],
        "ergast" => ERGAST_FILES.iter().map(|f| file(format!("{ERGAST_RAW_BASE}{f}"), format!("ergast/{f}"))).collect(),
        "wikipedia" => WIKIPEDIA_PAGES
            .iter()
            .map(|(title, rev)| file(wikipedia_url(title, *rev), format!("wikipedia/{title}.html")))
            .collect(),
        "livetiming" => LIVETIMING_SESSIONS
            .iter()
            .flat_map(|s| LIVETIMING_STREAMS.iter().map(move |st| (s, st)))
            .map(|(s, st)| {
                file(format!("{LIVETIMING_BASE}{s}{st}.jsonStream"), format!("livetiming/{s}{st}.jsonStream"))
            })
            .collect(),
        other => {
            return Err(Error::Http {
                url: String::new(),
                reason: format!("unknown source `{other}`; known: {}", SOURCES.join(", ")),
            })
        }
    })
}

/// The same files from another server that holds them in the mirror's layout: each URL becomes
/// `<upstream>/<path>`, every path segment percent-encoded (`wikipedia/107%25%20rule.html`).
/// Used to fetch from a copy of the mirror (or a test's loopback server) instead of the real
/// upstreams.
pub fn rebase(files: Vec<SourceFile>, upstream: &str) -> Vec<SourceFile> {
    let base = upstream.trim_end_matches('/');
    files
        .into_iter()
        .map(|f| {
            let mut url = base.to_string();
            for segment in f.path.iter() {
                url.push('/');
                for b in segment.to_string_lossy().bytes() {
                    match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => url.push(b as char),
                        _ => url.push_str(&format!("%{b:02X}")),
                    }
                }
            }
            SourceFile { url, path: f.path }
        })
        .collect()
}

/// Write `wikipedia/_PAGES.tsv` under `dest`: the revision of every page [`source_files`]
/// fetches, in the mirror's index format (`revision` and `file` columns), so that articles read
/// from fetched pages carry the same revision ids as the mirror's.
pub fn write_pages_index(dest: &Path) -> Result<PathBuf> {
    let path = dest.join("wikipedia").join("_PAGES.tsv");
    let mut text = String::from("revision\tfile\n");
    for (title, revision) in WIKIPEDIA_PAGES {
        text.push_str(&format!("{revision}\t{title}.html\n"));
    }
    f1_study::fs::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Fetch `files` (through the fetcher's cache) into `dest`, in the mirror's layout. Files
/// that fail are returned as rejects; the rest are written.
pub fn fetch_files(fetcher: &mut Fetcher, files: &[SourceFile], dest: &Path) -> Result<(Vec<PathBuf>, Vec<Reject>)> {
    let (mut written, mut rejects) = (Vec::new(), Vec::new());
    for f in files {
        match fetcher.fetch(&f.url) {
            Ok(page) => {
                let path = dest.join(&f.path);
                // Atomic, so an interrupted fetch never leaves half a file that looks complete.
                f1_study::fs::write_atomic(&path, &page.body)?;
                written.push(path);
            }
            Err(e) => rejects.push(Reject::new(f.url.clone(), e.to_string())),
        }
    }
    Ok((written, rejects))
}

/// Download source `name` from upstream into `dest` (mirror layout, so `F1_DATA=dest`
/// reads it), caching raw pages under `config.cache_dir`. Needs network.
pub fn fetch_source(name: &str, dest: &Path, config: FetchConfig) -> Result<(Vec<PathBuf>, Vec<Reject>)> {
    let files = source_files(name)?;
    let mut fetcher = Fetcher::new(config)?;
    fetch_files(&mut fetcher, &files, dest)
}
