//! Article extraction against the 25 real Wikipedia pages of the mirror
//! (`data_dir()/wikipedia`, desktop HTML, Vector skin).

use std::path::PathBuf;
use std::sync::OnceLock;

use phase1_curation::article::{extract, load_folder, Article, Reject};

fn dir() -> PathBuf {
    phase1_curation::data_dir().join("wikipedia")
}

fn loaded() -> &'static (Vec<Article>, Vec<Reject>) {
    static LOADED: OnceLock<(Vec<Article>, Vec<Reject>)> = OnceLock::new();
    LOADED.get_or_init(|| load_folder(&dir()))
}

fn article(title: &str) -> &'static Article {
    loaded().0.iter().find(|a| a.title == title).unwrap_or_else(|| panic!("no article {title:?}"))
}

/// Every text field of an article, with where it came from.
fn texts(a: &Article) -> Vec<(String, String)> {
    let mut out = vec![("lead".to_string(), a.lead.clone())];
    out.extend(a.sections.iter().map(|s| (s.heading.clone(), format!("{}\n{}", s.heading, s.text))));
    out.extend(a.infobox.iter().map(|(k, v)| (format!("infobox {k}"), format!("{k} {v}"))));
    for t in &a.tables {
        let mut cells = t.headers.clone();
        cells.extend(t.caption.clone());
        cells.extend(t.rows.iter().flatten().cloned());
        out.push(("table".into(), cells.join("\n")));
    }
    out
}

/// A reference marker like "[12]" left in the text.
fn has_numeric_marker(text: &str) -> bool {
    text.split('[')
        .skip(1)
        .any(|rest| rest.split_once(']').is_some_and(|(inner, _)| !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())))
}

#[test]
fn every_page_extracts() {
    let (articles, rejects) = loaded();
    assert!(rejects.is_empty(), "{rejects:?}");
    assert_eq!(articles.len(), 25);
    for a in articles {
        assert!(!a.title.is_empty() && a.lead.len() > 200, "{}: lead {:?}", a.title, a.lead);
        assert!(a.sections.len() >= 3, "{}", a.title);
        let url = a.url.as_deref().unwrap_or("");
        assert!(url.starts_with("https://en.wikipedia.org/w/index.php?title=") && url.contains("&oldid="), "{url}");
        for (place, text) in texts(a) {
            assert!(!has_numeric_marker(&text), "{} / {place}: {text}", a.title);
            for furniture in ["edit]", "Jump to navigation", "Retrieved ", ".mw-parser-output"] {
                assert!(!text.contains(furniture), "{} / {place}: {furniture:?} in {text}", a.title);
            }
        }
        for s in &a.sections {
            assert!((2..=6).contains(&s.level), "{}: {s:?}", a.title);
            assert!(!["References", "Notes", "External links", "See also"].contains(&s.heading.as_str()), "{}", a.title);
        }
    }
}

#[test]
fn tables_match_the_wikitables_in_the_html() {
    // Independent count: `<table class="... wikitable ...">` tags in the raw HTML, less the
    // `noprint` succession boxes. (`_PAGES.tsv`'s `wikitables` column undercounts: it misses
    // "sortable wikitable".) Articles come sorted by file name.
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("mirror")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    for (file, a) in files.iter().zip(&loaded().0) {
        let html = std::fs::read_to_string(file).expect("readable");
        let expected = html
            .split("<table")
            .skip(1)
            .filter_map(|tag| tag.split('>').next())
            .filter_map(|attrs| attrs.split("class=\"").nth(1).and_then(|c| c.split('"').next()))
            .filter(|class| class.split(' ').any(|c| c == "wikitable") && !class.split(' ').any(|c| c == "noprint"))
            .count();
        assert_eq!(a.tables.len(), expected, "{}", file.display());
        for t in &a.tables {
            assert!(!t.rows.is_empty(), "{}: empty table {t:?}", a.title);
        }
    }
}

#[test]
fn abu_dhabi_2021() {
    let a = article("2021 Abu Dhabi Grand Prix");
    assert!(a.lead.contains("Verstappen"), "{}", a.lead);
    assert!(a.lead.starts_with("The 2021 Abu Dhabi Grand Prix (officially known as"), "{}", a.lead);
    let field = |k: &str| a.infobox.iter().find(|(key, _)| key.ends_with(k)).map(|(_, v)| v.as_str());
    assert_eq!(field("Date"), Some("12 December 2021"));
    assert_eq!(field("Location"), Some("Yas Marina Circuit, Abu Dhabi, United Arab Emirates"));
    assert_eq!(field("Podium / First"), Some("Max Verstappen; Red Bull Racing-Honda"));

    let race = a.tables.iter().find(|t| t.section.as_deref() == Some("Race classification")).expect("race classification");
    assert_eq!(race.headers, ["Pos.", "No.", "Driver", "Constructor", "Laps", "Time/Retired", "Grid", "Points"]);
    assert_eq!(race.rows[0], ["1", "33", "Max Verstappen", "Red Bull Racing-Honda", "58", "1:30:17.345", "1", "26"]);
    assert!(a.tables.iter().any(|t| t.rows.iter().any(|r| r.iter().any(|c| c == "Max Verstappen"))));

    let headings: Vec<&str> = a.sections.iter().map(|s| s.heading.as_str()).collect();
    assert!(headings.contains(&"Safety car controversy") && !headings.contains(&"References"), "{headings:?}");
    for (place, text) in texts(a) {
        assert!(!has_numeric_marker(&text) && !text.contains("edit]") && !text.contains("Jump to navigation"), "{place}: {text}");
    }
}

#[test]
fn season_1950_has_a_results_table() {
    let a = article("1950 Formula One season");
    let races = a.tables.iter().find(|t| t.headers.iter().any(|h| h == "Winning driver")).expect("a race results table");
    assert_eq!(races.rows.len(), 7);
    assert_eq!(races.rows[0][..5], ["1", "British Grand Prix", "Giuseppe Farina", "Giuseppe Farina", "Giuseppe Farina"]);
    let standings = a.tables.iter().find(|t| t.section.as_deref() == Some("World Championship of Drivers standings")).expect("standings");
    assert_eq!(standings.rows[0][..2], ["1", "Giuseppe Farina"]);
    assert_eq!(standings.rows[0].last().map(String::as_str), Some("30"));
}

#[test]
fn non_html_is_an_error() {
    for input in ["", "  \n", r#"{"a":1}"#, "Max Verstappen won the 2021 title.", "<html><body><p>Hello</p></body></html>"] {
        assert!(extract(input, None).is_err(), "{input:?}");
    }
}

#[test]
fn extraction_is_deterministic() {
    let html = std::fs::read_to_string(dir().join("2021 Abu Dhabi Grand Prix.html")).expect("page");
    assert_eq!(extract(&html, None), extract(&html, None));
    let again = load_folder(&dir());
    assert_eq!(&again, loaded());
}
