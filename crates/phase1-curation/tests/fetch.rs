//! The polite fetcher and the crawler against a loopback HTTP server written here (std
//! `TcpListener`, one thread per connection) that serves the mirror's Wikipedia pages and
//! routes that misbehave on purpose: disallowed by robots.txt, 429 then 200, always 500, a
//! hang, a body over the cap, a JSON body. No request leaves 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phase1_curation::fetch::{
    crawl, fetch_files, parse_retry_after, source_files, wikipedia_url, CacheMeta, FetchConfig, Fetcher, Robots, Seed,
    SourceFile,
};
use phase1_curation::{data_dir, Error};

const ROBOTS: &str = "# test robots\n\
User-agent: f1-llm-curation\n\
Disallow: /private\n\
\n\
User-agent: *\n\
Disallow: /\n";

/// The loopback server: a log of `(path, arrival)` per request; stops when dropped.
struct Server {
    base: String,
    log: Arc<Mutex<Vec<(String, Instant)>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start() -> Server {
        Server::start_with(ROBOTS.into())
    }

    /// A server whose robots.txt is `robots`.
    fn start_with(robots: String) -> Server {
        let robots: Arc<str> = robots.into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        thread::spawn(move || {
            // Bounded: at most 60 s, or until the test drops the server.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (log, robots) = (log2.clone(), robots.clone());
                        thread::spawn(move || handle(stream, &log, &robots));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { base, log, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> Vec<Instant> {
        self.log.lock().expect("log").iter().filter(|(p, _)| p == path).map(|(_, t)| *t).collect()
    }

    fn total(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Every path requested so far, in order.
    fn paths(&self) -> Vec<String> {
        self.log.lock().expect("log").iter().map(|(p, _)| p.clone()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn handle(mut stream: TcpStream, log: &Mutex<Vec<(String, Instant)>>, robots: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request).lines().next().unwrap_or_default().to_owned();
    let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let seen = {
        let mut log = log.lock().expect("log");
        log.push((path.clone(), Instant::now()));
        log.iter().filter(|(p, _)| *p == path).count()
    };
    let html = || vec![("Content-Type", "text/html; charset=utf-8".to_owned())];
    match path.as_str() {
        "/robots.txt" => respond(&mut stream, "200 OK", &[("Content-Type", "text/plain".into())], robots.as_bytes()),
        "/flaky" if seen == 1 => respond(&mut stream, "429 Too Many Requests", &[("Retry-After", "1".into())], b""),
        "/flaky" => respond(&mut stream, "200 OK", &html(), b"<html><body>ok</body></html>"),
        "/slow-down" => respond(&mut stream, "503 Service Unavailable", &[("Retry-After", "3600".into())], b""),
        "/error" => respond(&mut stream, "500 Internal Server Error", &[], b"boom"),
        "/hang" => thread::sleep(Duration::from_secs(2)),
        "/big" => {
            respond(&mut stream, "200 OK", &[("Content-Length", (1536 * 1024).to_string())], &vec![b'x'; 1536 * 1024])
        }
        // No Content-Length: the cap must stop the read itself.
        "/big-stream" => respond(&mut stream, "200 OK", &[], &vec![b'x'; 1536 * 1024]),
        "/data.json" => respond(&mut stream, "200 OK", &[("Content-Type", "application/json".into())], b"{\"a\":1}"),
        // The whole mirror, in its layout: what `phase1-curation fetch --upstream` reads.
        p if p.starts_with("/mirror/") => match std::fs::read(data_dir().join(percent_decode(p.trim_start_matches("/mirror/")))) {
            Ok(body) => respond(&mut stream, "200 OK", &[("Content-Length", body.len().to_string())], &body),
            Err(_) => respond(&mut stream, "404 Not Found", &[], b""),
        },
        p if p.starts_with("/wiki/") => {
            let name = percent_decode(p.trim_start_matches("/wiki/"));
            match std::fs::read(data_dir().join("wikipedia").join(name)) {
                Ok(body) => respond(&mut stream, "200 OK", &html(), &body),
                Err(_) => respond(&mut stream, "404 Not Found", &[], b""),
            }
        }
        _ => respond(&mut stream, "404 Not Found", &[], b""),
    }
}

/// `%XX` escapes of a URL path back to the bytes they stand for (UTF-8 file names).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A file name as a URL path segment: unreserved bytes as they are, the rest `%XX`.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn config(cache: &tempfile::TempDir) -> FetchConfig {
    FetchConfig {
        cache_dir: cache.path().to_owned(),
        min_interval_ms: 0,
        max_retries: 2,
        backoff_ms: 50,
        max_backoff_ms: 2000,
        connect_timeout_ms: 1000,
        timeout_ms: 300,
        max_bytes: 1 << 20,
        ..FetchConfig::default()
    }
}

fn http_reason(e: Error) -> (String, String) {
    match e {
        Error::Http { url, reason } => (url, reason),
        other => panic!("expected an HTTP error, got {other}"),
    }
}

#[test]
fn pages_are_cached_and_a_rerun_sends_no_request() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let url = server.url("/wiki/Brabham.html");
    let mirror = std::fs::read(data_dir().join("wikipedia/Brabham.html")).expect("mirror page");

    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let page = fetcher.fetch(&url).expect("first fetch");
    assert!(!page.from_cache);
    assert_eq!(page.body, mirror);
    let meta: CacheMeta =
        serde_json::from_slice(&std::fs::read(page.body_path.with_extension("json")).expect("sidecar")).expect("json");
    assert_eq!((meta.url.as_str(), meta.status, meta.bytes), (url.as_str(), 200, mirror.len() as u64));
    assert_eq!(meta.content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(meta.sha256.len(), 64);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    assert!(meta.fetched_at <= now && meta.fetched_at + 60 > now);
    assert_eq!(std::fs::read(&page.body_path).expect("body file"), mirror);
    assert_eq!(server.total(), 2, "robots.txt and the page");

    // A re-run: a new fetcher on the same cache asks the server nothing.
    let mut rerun = Fetcher::new(config(&cache)).expect("client");
    let again = rerun.fetch(&url).expect("cached fetch");
    assert!(again.from_cache);
    assert_eq!(again.body, mirror);
    assert_eq!((server.total(), rerun.requests), (2, 0));

    // A body that no longer matches its sidecar's sha256 is fetched again.
    std::fs::write(&page.body_path, b"tampered").expect("tamper");
    let refetched = rerun.fetch(&url).expect("refetch");
    assert!(!refetched.from_cache);
    assert_eq!(server.hits("/wiki/Brabham.html").len(), 2);
}

#[test]
fn retries_429_after_retry_after_then_succeeds() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let page = fetcher.fetch(&server.url("/flaky")).expect("second attempt succeeds");
    assert_eq!(page.meta.status, 200);
    let hits = server.hits("/flaky");
    assert_eq!(hits.len(), 2);
    // Retry-After: 1 wins over the 50 ms backoff.
    assert!(hits[1] - hits[0] >= Duration::from_millis(950), "{:?}", hits[1] - hits[0]);
}

#[test]
fn gives_up_on_500_after_the_retries_naming_the_url() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let url = server.url("/error");
    let (at, reason) = http_reason(fetcher.fetch(&url).expect_err("always 500"));
    assert_eq!(at, url);
    assert!(reason.contains("gave up after 3 attempts") && reason.contains("500"), "{reason}");
    let hits = server.hits("/error");
    assert_eq!(hits.len(), 3);
    // Exponential backoff: 50 ms, then 100 ms.
    assert!(hits[1] - hits[0] >= Duration::from_millis(45));
    assert!(hits[2] - hits[1] >= Duration::from_millis(95));
    // Nothing is cached for a failure.
    assert!(fetcher.fetch(&url).is_err());
}

#[test]
fn a_retry_after_over_the_cap_is_not_retried() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let (_, reason) = http_reason(fetcher.fetch(&server.url("/slow-down")).expect_err("503"));
    assert!(reason.contains("Retry-After 3600s") && reason.contains("not retried"), "{reason}");
    assert_eq!(server.hits("/slow-down").len(), 1);
}

#[test]
fn a_crawl_delay_over_the_cap_refuses_the_host_instead_of_sleeping() {
    for delay in ["1e20", "1e9", "3"] {
        let server = Server::start_with(format!("User-agent: *\nCrawl-delay: {delay}\n"));
        let cache = tempfile::tempdir().expect("tempdir");
        let mut fetcher = Fetcher::new(config(&cache)).expect("client");
        let started = Instant::now();
        let (_, reason) = http_reason(fetcher.fetch(&server.url("/flaky")).expect_err(delay));
        assert!(reason.contains("Crawl-delay") && reason.contains("max_backoff_ms"), "{delay}: {reason}");
        assert!(started.elapsed() < Duration::from_secs(2), "{delay}: {:?}", started.elapsed());
        assert!(server.hits("/flaky").is_empty(), "{delay}: the page was asked for");
    }
}

#[test]
fn a_hanging_server_times_out_naming_the_url() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&cache);
    cfg.max_retries = 1;
    let mut fetcher = Fetcher::new(cfg).expect("client");
    let url = server.url("/hang");
    let start = Instant::now();
    let (at, reason) = http_reason(fetcher.fetch(&url).expect_err("hangs"));
    assert_eq!(at, url);
    assert!(reason.contains("timed out"), "{reason}");
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    assert_eq!(server.hits("/hang").len(), 2);
}

#[test]
fn bodies_over_the_cap_are_aborted() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    for path in ["/big", "/big-stream"] {
        let url = server.url(path);
        let (at, reason) = http_reason(fetcher.fetch(&url).expect_err("over the cap"));
        assert_eq!(at, url);
        assert!(reason.contains("over the cap of 1048576 bytes"), "{path}: {reason}");
        // Refused on the declared length, or cut off while reading when none is declared.
        assert_eq!(reason.contains("of 1572864 bytes"), path == "/big", "{path}: {reason}");
        // Not a transient failure: no retry.
        assert_eq!(server.hits(path).len(), 1, "{path}");
    }
}

#[test]
fn requests_to_one_host_are_spaced_by_the_interval() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(&cache);
    cfg.min_interval_ms = 300;
    let mut fetcher = Fetcher::new(cfg).expect("client");
    fetcher.fetch(&server.url("/wiki/Brawn%20GP.html")).expect("first");
    fetcher.fetch(&server.url("/wiki/Charlie%20Whiting.html")).expect("second");
    let times: Vec<Instant> = server.log.lock().expect("log").iter().map(|(_, t)| *t).collect();
    assert_eq!(times.len(), 3, "robots.txt and two pages");
    for pair in times.windows(2) {
        // Client-side spacing is exact; allow a little for loopback jitter at arrival.
        assert!(pair[1] - pair[0] >= Duration::from_millis(280), "{:?}", pair[1] - pair[0]);
    }
}

#[test]
fn the_crawler_skips_disallowed_and_non_html_seeds_and_says_why() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let saved = data_dir().join("wikipedia/Brawn GP.html");
    let seeds = vec![
        Seed::Url(server.url("/wiki/Brabham.html")),
        Seed::Url(server.url("/private/secret.html")),
        Seed::Url(server.url("/data.json")),
        Seed::Url(server.url("/error")),
        Seed::File(saved.clone()),
        Seed::File(PathBuf::from("/nonexistent/page.html")),
    ];
    let crawl = crawl(&mut fetcher, &seeds);
    let titles: Vec<&str> = crawl.articles.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(titles, ["Brabham", "Brawn GP"]);
    let reasons: Vec<String> = crawl.rejects.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(
        reasons[0].contains("/private/secret.html")
            && reasons[0].contains("disallowed by robots.txt (Disallow: /private)")
    );
    assert!(reasons[1].contains("/data.json") && reasons[1].contains("not an HTML page (application/json)"));
    assert!(reasons[2].contains("/error") && reasons[2].contains("gave up"));
    assert!(reasons[3].contains("/nonexistent/page.html"));
    // The disallowed page never reached the server; robots.txt was read once.
    assert!(server.hits("/private/secret.html").is_empty());
    assert_eq!(server.hits("/robots.txt").len(), 1);

    // A folder of saved pages as seeds.
    let folder = Seed::folder(&data_dir().join("wikipedia")).expect("folder");
    assert_eq!(folder.len(), 25);
    assert!(folder.iter().all(|s| matches!(s, Seed::File(p) if p.extension().is_some_and(|e| e == "html"))));
}

#[test]
fn fetch_files_writes_the_mirror_layout() {
    let server = Server::start();
    let cache = tempfile::tempdir().expect("tempdir");
    let dest = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(config(&cache)).expect("client");
    let files = [
        SourceFile { url: server.url("/wiki/Brabham.html"), path: "wikipedia/Brabham.html".into() },
        SourceFile { url: server.url("/wiki/missing.html"), path: "wikipedia/missing.html".into() },
    ];
    let (written, rejects) = fetch_files(&mut fetcher, &files, dest.path()).expect("fetch");
    assert_eq!(written, [dest.path().join("wikipedia/Brabham.html")]);
    assert_eq!(
        std::fs::read(&written[0]).expect("written"),
        std::fs::read(data_dir().join("wikipedia/Brabham.html")).expect("mirror")
    );
    assert_eq!(rejects.len(), 1);
    assert!(rejects[0].to_string().contains("HTTP 404"), "{}", rejects[0]);
}

#[test]
fn upstream_urls_of_every_source() {
    let f1db = source_files("f1db").expect("f1db");
    assert_eq!(f1db[0].url, "https://github.com/f1db/f1db/archive/refs/heads/main.tar.gz");
    let ergast = source_files("ergast").expect("ergast");
    assert_eq!(ergast.len(), 17);
    assert!(ergast.iter().all(|f| f.url.starts_with("https://raw.githubusercontent.com/TracingInsights/RaceData/")));
    // Every mirror file has its upstream URL.
    for f in ergast {
        assert!(data_dir().join(&f.path).is_file(), "{}", f.path.display());
    }
    let wiki = source_files("wikipedia").expect("wikipedia");
    assert_eq!(wiki.len(), 25);
    for f in &wiki {
        assert!(data_dir().join(&f.path).is_file(), "{}", f.path.display());
    }
    assert_eq!(wikipedia_url("107% rule", 1195769632), "https://en.wikipedia.org/wiki/107%25_rule?oldid=1195769632");
    assert_eq!(
        wikipedia_url("Hamilton–Rosberg rivalry", 1),
        "https://en.wikipedia.org/wiki/Hamilton%E2%80%93Rosberg_rivalry?oldid=1"
    );
    let live = source_files("livetiming").expect("livetiming");
    assert!(live[0].url.starts_with("https://livetiming.formula1.com/static/2018/2018-04-29_Azerbaijan_Grand_Prix/"));
    let on_disk = live.iter().filter(|f| data_dir().join(&f.path).is_file()).count();
    assert_eq!(on_disk, 30, "the mirror's 30 streams are among the URLs");
    let err = source_files("nope").expect_err("unknown");
    assert!(err.to_string().contains("unknown source `nope`"), "{err}");
}

#[test]
fn robots_rules() {
    let robots = Robots::parse(
        "User-agent: other\nDisallow: /\n\n\
         User-agent: F1-LLM-Curation\nUser-agent: friend\nDisallow: /private\nAllow: /private/ok\n\
         Disallow: /*.json$\nDisallow: /search*q=\nCrawl-delay: 2.5 # seconds\n\n\
         User-agent: *\nDisallow: /\nCrawl-delay: 10\n",
    );
    let ours = "f1-llm-curation";
    let check = |path: &str| robots.check(ours, path);
    assert!(check("/wiki/Brabham").allowed);
    let no = check("/private/x");
    assert_eq!((no.allowed, no.rule.as_deref()), (false, Some("Disallow: /private")));
    assert!(check("/private/ok/page").allowed, "the longer Allow wins");
    assert!(!check("/a/b.json").allowed);
    assert!(check("/a/b.json?x=1").allowed, "`$` anchors the end");
    assert!(!check("/search?lang=en&q=senna").allowed);
    assert!(check("/robots.txt").allowed);
    assert_eq!(robots.crawl_delay(ours), Some(Duration::from_millis(2500)));
    assert!(robots.check("friend", "/wiki").allowed);
    // Anyone else falls to `*`.
    assert!(!robots.check("somebot", "/wiki").allowed);
    assert_eq!(robots.crawl_delay("somebot"), Some(Duration::from_secs(10)));
    // A delay no Duration holds (from_secs_f64 panicked on it) saturates.
    assert_eq!(Robots::parse("User-agent: *\nCrawl-delay: 1e20\n").crawl_delay(ours), Some(Duration::MAX));
    assert!(Robots::allow_all().check(ours, "/x").allowed);
    assert!(!Robots::disallow_all().check(ours, "/x").allowed);
    assert_eq!(FetchConfig::default().agent_token(), ours);
}

#[test]
fn retry_after_in_seconds_or_as_a_date() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
}

/// `phase1-curation run` with its articles given as URLs in the config (and no folder of saved
/// pages): every page is fetched once through the polite fetcher, gives the same article as
/// the saved page, and is listed in the data card with its hash; a URL that fails is a reject
/// with its reason; pairs cite the URLs; a rerun reads the cache and writes the same files.
#[test]
fn run_crawls_the_article_urls_of_the_config() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let wiki = data_dir().join("wikipedia");
    let mut names: Vec<String> = std::fs::read_dir(&wiki)
        .expect("mirror wikipedia/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".html"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 25);
    let mut urls: Vec<String> = names.iter().map(|n| server.url(&format!("/wiki/{}", percent_encode(n)))).collect();
    urls.push(server.url("/error"));
    let cache = dir.path().join("cache");
    let yaml = format!(
        "curation:\n  profiles: {{quick: {{pairs: 400, benchmark: 40, probe: 8}}}}\n  sources:\n    wikipedia: \"\"\n    crawl:\n      urls:\n{}      fetch: {{cache_dir: \"{}\", min_interval_ms: 0, max_retries: 1, backoff_ms: 50, timeout_ms: 10000}}\n",
        urls.iter().map(|u| format!("        - \"{u}\"\n")).collect::<String>(),
        cache.display()
    );
    let config = dir.path().join("study.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let out = dir.path().join("data");
    let run = || {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_phase1-curation"))
            .args(["run", "--profile", "quick", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .env("F1_DATA", data_dir())
            .env_remove("F1_ROOT")
            .status()
            .expect("run phase1-curation");
        assert!(status.success(), "phase1-curation run failed");
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("curated/data_card.json")).expect("card")).expect("card json");
        card
    };
    let card = run();

    // Each page was requested once, robots.txt once; the failing URL was retried and rejected.
    for u in &urls[..25] {
        let path = u.trim_start_matches(&server.base);
        assert_eq!(server.hits(path).len(), 1, "{path}");
    }
    assert_eq!(server.hits("/robots.txt").len(), 1);
    let stage = card["stages"].as_array().expect("stages").iter().find(|s| s["name"] == "crawl").expect("crawl stage").clone();
    assert_eq!((stage["inputs"].as_u64(), stage["outputs"].as_u64(), stage["rejects"].as_u64()), (Some(26), Some(25), Some(1)));
    assert!(card["stages"].as_array().expect("stages").iter().all(|s| s["name"] != "wikipedia"), "no saved pages were read");
    let rejects: Vec<&serde_json::Value> = card["rejects"].as_array().expect("rejects").iter().filter(|r| r["stage"] == "crawl").collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(rejects[0].to_string().contains("/error") && rejects[0].to_string().contains("gave up"), "{}", rejects[0]);

    // The card lists every URL with the hash of the page the mirror holds.
    let inputs = card["inputs"].as_array().expect("inputs");
    for (name, url) in names.iter().zip(&urls) {
        let entry = inputs.iter().find(|i| i["path"] == url.as_str()).unwrap_or_else(|| panic!("{url} not in the card's inputs"));
        let body = std::fs::read(wiki.join(name)).expect("mirror page");
        assert_eq!(entry["sha256"].as_str(), Some(phase1_curation::curate::output::sha256_hex(&body).as_str()), "{name}");
    }

    // The articles are the saved pages' articles; their pairs cite the URL.
    let (saved, _) = phase1_curation::article::load_folder(&wiki);
    let seeds: Vec<Seed> = urls[..25].iter().cloned().map(Seed::Url).collect();
    let crawled = crawl(&mut Fetcher::new(FetchConfig { cache_dir: cache.clone(), min_interval_ms: 0, ..FetchConfig::default() }).expect("client"), &seeds);
    let titles = |a: &[phase1_curation::article::Article]| a.iter().map(|a| (a.title.clone(), a.sections.len())).collect::<Vec<_>>();
    assert_eq!(titles(&crawled.articles), titles(&saved));
    let pairs: String = ["train", "validation", "test"]
        .iter()
        .map(|s| std::fs::read_to_string(out.join(format!("curated/{s}.jsonl"))).expect("pairs"))
        .collect();
    let cited = pairs.lines().filter(|l| l.contains(&format!("\"provenance\":\"{}/wiki/", server.base))).count();
    assert!(cited > 0, "no pair cites a crawled URL");

    // A rerun is served from the cache (no page requested again) and writes the same outputs.
    let again = run();
    for u in &urls[..25] {
        assert_eq!(server.hits(u.trim_start_matches(&server.base)).len(), 1);
    }
    assert_eq!(again["outputs"], card["outputs"]);
}

#[test]
fn a_host_whose_robots_txt_cannot_be_read_is_refused_with_that_reason() {
    // A port nothing listens on: robots.txt is unreachable, so RFC 9309 forbids the host.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let cache = tempfile::tempdir().expect("tempdir");
    let mut fetcher = Fetcher::new(FetchConfig { max_retries: 0, ..config(&cache) }).expect("client");
    let url = format!("http://127.0.0.1:{port}/wiki/Brabham.html");
    let (failed, reason) = http_reason(fetcher.fetch(&url).expect_err("refused"));
    assert_eq!(failed, url);
    assert!(reason.contains(&format!("http://127.0.0.1:{port}/robots.txt could not be read")) && reason.contains("RFC 9309"), "{reason}");
}

/// A fresh machine: every source fetched from an upstream (here a loopback server holding the
/// mirror's files) lands in the mirror's layout, and curating from it gives the same pairs,
/// benchmark and probe as curating from the mirror itself. A second fetch asks the server
/// nothing: everything comes from the cache.
#[test]
fn sources_fetched_from_upstream_curate_exactly_like_the_mirror() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (sources, cache) = (dir.path().join("sources"), dir.path().join("cache"));
    let fetch = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phase1-curation"))
            .args(["fetch", "--min-interval-ms", "0", "--upstream", &server.url("/mirror")])
            .arg("--dest")
            .arg(&sources)
            .arg("--cache")
            .arg(&cache)
            .env_remove("F1_ROOT")
            .output()
            .expect("run phase1-curation fetch");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "fetch failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    // 73 files: F1DB's archive, 17 CSVs, 25 pages, 30 streams (the two streams no session of
    // the mirror has are answered 404, as upstream answers them, and are not failures).
    let first = fetch();
    assert!(first.contains("sources: 73 files"), "{first}");
    assert_eq!(server.hits("/robots.txt").len(), 1);
    let requested = server.paths();
    assert_eq!(requested.len(), 76, "73 files, 2 unpublished streams and robots.txt: {requested:?}");
    for file in ["f1db-main.tar.gz", "ergast/races.csv", "wikipedia/107% rule.html", "livetiming/2018/2018-04-29_Azerbaijan_Grand_Prix/2018-04-29_Race/TimingData.jsonStream"] {
        assert_eq!(std::fs::read(sources.join(file)).expect("fetched"), std::fs::read(data_dir().join(file)).expect("mirror"), "{file}");
    }
    assert!(sources.join("wikipedia/_PAGES.tsv").is_file());
    // A rerun asks only for what upstream did not have; every fetched file comes from the cache.
    let again = fetch();
    let asked_again = &server.paths()[requested.len()..];
    assert!(asked_again.iter().all(|p| p == "/robots.txt" || p.ends_with("RaceControlMessages.jsonStream") || p.ends_with("LapCount.jsonStream")), "{asked_again:?}\n{again}");
    assert!(asked_again.len() <= 3, "{asked_again:?}");

    let config = dir.path().join("study.yaml");
    std::fs::write(&config, "curation:\n  profiles: {quick: {pairs: 400, benchmark: 40, probe: 8}}\n").expect("write config");
    let curate = |mirror: &std::path::Path, out: &std::path::Path| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_phase1-curation"))
            .args(["run", "--profile", "quick", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(out)
            .env("F1_DATA", mirror)
            .env_remove("F1_ROOT")
            .status()
            .expect("run phase1-curation");
        assert!(status.success(), "phase1-curation run on {} failed", mirror.display());
    };
    let (from_fetch, from_mirror) = (dir.path().join("a"), dir.path().join("b"));
    curate(&sources, &from_fetch);
    curate(&data_dir(), &from_mirror);
    for file in ["train.jsonl", "validation.jsonl", "test.jsonl", "benchmark.jsonl", "probe.jsonl"] {
        let (a, b) = (std::fs::read(from_fetch.join("curated").join(file)).expect("curated"), std::fs::read(from_mirror.join("curated").join(file)).expect("curated"));
        assert!(!a.is_empty() && a == b, "{file} differs between the fetched sources and the mirror");
    }
}
