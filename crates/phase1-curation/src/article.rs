//! Structured text from Wikipedia article HTML as served to a desktop browser (the Vector skin
//! of 2023-2024; MediaWiki's legacy parser output): title, lead, sections, infobox and
//! `wikitable`s, with the page furniture left out.
//!
//! The article body is the first `#mw-content-text .mw-parser-output` (templates nest further
//! `.mw-parser-output` elements inside it); HTML without one, such as the bare output of the
//! parse API, falls back to the first `.mw-parser-output` anywhere. Input with neither, or with
//! no text in it, is not an article and gives `Err`.
//!
//! The body's children are read in order. A heading (`<h2>`..`<h6>`, or the newer
//! `div.mw-heading` wrapper, or inside a Parsoid `<section>`) opens a [`Section`]; everything
//! before the first heading is the lead. Sections titled References, Notes, External links,
//! See also and the like are dropped with their subsections. Inside, these are dropped as
//! furniture: `style`, `script`, edit links (`.mw-editsection`), reference markers
//! (`sup.reference`), reference lists, navboxes, hatnotes, sidebars, message boxes, `.noprint`
//! (which includes "[citation needed]" tags), the title coordinates, figures and thumbnails
//! (image captions are not prose), hidden elements (`display:none`, sort keys) and every
//! table. Remaining citation-like markers (`[1]`, `[a]`, `[note 2]`) are removed from the text.
//! Whitespace is collapsed within a line; paragraphs, list items and other blocks each give
//! one line.
//!
//! Tables are read separately. `table.infobox` gives label/value pairs from rows with a `th`
//! label and `td` data; a value spread over several `td`s (driver and team) joins them with
//! "; ", and a label under an infobox header row is prefixed with it ("Pole position / Driver",
//! because "Driver" alone appears under pole, fastest lap and podium). Rows without a label
//! (title, image, caption, navigation) are left out. Every `table.wikitable` outside the
//! furniture (including those inside an infobox) gives a [`Table`]: its caption, the section it
//! sits in, header and data rows, each cell text-normalised (a data cell's lines joined with
//! "; ", a header's with a space). `colspan` repeats a cell across the columns it covers and
//! `rowspan` repeats it down the rows it covers (both capped at [`MAX_SPAN`]), so rows line up
//! with the header. Leading rows made only of `th` cells form the header, merged column by
//! column when there are several ("Qualifying times" over "Q1"); a `th`-only row with one text
//! across the whole table is a group label, and it and later `th`-only rows (footers) are left
//! out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use scraper::{CaseSensitivity, ElementRef, Html, Node, Selector};
use serde::Serialize;

pub use crate::Reject;

/// The largest `colspan` or `rowspan` honoured; larger ones are clamped.
pub const MAX_SPAN: usize = 100;

/// One article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Article {
    /// The page title, e.g. "2021 Abu Dhabi Grand Prix".
    pub title: String,
    /// Where the page came from: as given, else the page's canonical link.
    pub url: Option<String>,
    /// Text before the first heading.
    pub lead: String,
    /// Sections in page order (flat; `level` gives the nesting).
    pub sections: Vec<Section>,
    /// Infobox label/value pairs in order.
    pub infobox: Vec<(String, String)>,
    /// Data tables (`table.wikitable`) in page order.
    pub tables: Vec<Table>,
}

/// One section of an article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Heading text.
    pub heading: String,
    /// 2 for `<h2>` ... 6 for `<h6>`.
    pub level: u8,
    /// Text of the section's own blocks (not its subsections'), one line per block.
    pub text: String,
}

/// One `wikitable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// The `<caption>`, if any.
    pub caption: Option<String>,
    /// Heading of the section holding the table; `None` in the lead.
    pub section: Option<String>,
    /// Column headers.
    pub headers: Vec<String>,
    /// Data rows.
    pub rows: Vec<Vec<String>>,
}

/// Section headings whose sections are apparatus, not content.
const SKIPPED_SECTIONS: &[&str] = &[
    "references",
    "notes",
    "footnotes",
    "citations",
    "sources",
    "bibliography",
    "further reading",
    "external links",
    "see also",
    "notes and references",
    "references and notes",
    "explanatory notes",
    "works cited",
    "general references",
    "cited sources",
];

/// Elements that are page furniture wherever they appear.
const FURNITURE: &str = "style, script, noscript, link, meta, sup.reference, .mw-editsection, .noprint, \
     .navbox, .navbox-styles, .vertical-navbox, .hatnote, .reflist, .references, .mw-references-wrap, \
     .refbegin, .shortdescription, .mw-empty-elt, #coordinates, .mw-indicators, .sidebar, .ambox, \
     .mbox-small, .metadata, .sistersitebox, .portalbox, .navigation-not-searchable, .toc, #toc, \
     .mw-cite-backlink, .mw-authority-control, .catlinks, .printfooter, .mw-jump-link, .sortkey, \
     figure, .thumb, .gallery, [style*='display:none'], [style*='display: none']";

struct Selectors {
    content: Selector,
    any_output: Selector,
    furniture: Selector,
    h1: Selector,
    title: Selector,
    canonical: Selector,
}

fn selectors() -> &'static Selectors {
    static S: OnceLock<Selectors> = OnceLock::new();
    S.get_or_init(|| {
        // These are fixed strings checked by the tests: a failure is a bug here, not bad input.
        let sel = |s: &str| Selector::parse(s).expect("static selector parses");
        Selectors {
            content: sel("#mw-content-text .mw-parser-output"),
            any_output: sel(".mw-parser-output"),
            furniture: sel(FURNITURE),
            h1: sel("h1#firstHeading"),
            title: sel("title"),
            canonical: sel("link[rel='canonical']"),
        }
    })
}

/// Extract an article from one HTML page. `url` overrides the page's canonical link.
pub fn extract(html: &str, url: Option<&str>) -> Result<Article, String> {
    if html.trim().is_empty() {
        return Err("empty input".into());
    }
    let s = selectors();
    let doc = Html::parse_document(html);
    // The walks below recurse per element, so nesting is bounded first (by a loop).
    let depth = nesting_depth(&doc);
    if depth > MAX_DEPTH {
        return Err(format!("elements nest {depth} deep, more than the {MAX_DEPTH} this reader walks (Wikipedia articles nest under 100): not an article page"));
    }
    let body = doc
        .select(&s.content)
        .next()
        .or_else(|| doc.select(&s.any_output).next())
        .ok_or("not an article page: no `#mw-content-text .mw-parser-output` element")?;
    let title = doc
        .select(&s.h1)
        .next()
        .map(|h| one_line(&lines(h)))
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let t = one_line(&lines(doc.select(&s.title).next()?));
            Some(t.strip_suffix(" - Wikipedia").unwrap_or(&t).to_string())
        })
        .filter(|t| !t.is_empty())
        .ok_or("no title: neither `h1#firstHeading` nor `<title>`")?;
    let url = url.map(str::to_string).or_else(|| doc.select(&s.canonical).next()?.attr("href").map(str::to_string));

    let mut walk = Walk { lead: Vec::new(), sections: Vec::new(), infobox: Vec::new(), tables: Vec::new(), skip_below: None };
    walk.children(body);
    let Walk { lead, sections, infobox, tables, .. } = walk;
    let article = Article { title, url, lead: lead.join("\n"), sections, infobox, tables };
    if article.lead.is_empty() && article.sections.iter().all(|s| s.text.is_empty()) && article.tables.is_empty() {
        return Err("the article body holds no text".into());
    }
    Ok(article)
}

/// Deepest element nesting [`extract`] walks.
const MAX_DEPTH: usize = 512;

/// How deep the document's nodes nest, found with an explicit stack (no recursion).
fn nesting_depth(doc: &Html) -> usize {
    let mut stack = vec![(doc.tree.root(), 0usize)];
    let mut deepest = 0;
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        stack.extend(node.children().map(|child| (child, depth + 1)));
    }
    deepest
}

/// The state of one pass over the article body.
struct Walk {
    lead: Vec<String>,
    sections: Vec<Section>,
    infobox: Vec<(String, String)>,
    tables: Vec<Table>,
    /// Inside a dropped section of this level: skip until a heading at this level or above.
    skip_below: Option<u8>,
}

impl Walk {
    fn children(&mut self, parent: ElementRef<'_>) {
        for child in parent.child_elements() {
            self.block(child);
        }
    }

    fn block(&mut self, el: ElementRef<'_>) {
        if el.value().name() == "section" {
            return self.children(el);
        }
        if let Some((level, heading)) = heading(el) {
            if self.skip_below.is_some_and(|l| level > l) {
                return;
            }
            self.skip_below = None;
            if is_apparatus(&heading) {
                self.skip_below = Some(level);
            } else {
                self.sections.push(Section { heading, level, text: String::new() });
            }
            return;
        }
        if self.skip_below.is_some() || selectors().furniture.matches(&el) {
            return;
        }
        self.find_tables(el);
        if el.value().name() == "table" {
            return;
        }
        let text = lines(el);
        if text.is_empty() {
            return;
        }
        match self.sections.last_mut() {
            Some(section) => {
                if !section.text.is_empty() {
                    section.text.push('\n');
                }
                section.text.push_str(&text.join("\n"));
            }
            None => self.lead.extend(text),
        }
    }

    fn find_tables(&mut self, el: ElementRef<'_>) {
        if selectors().furniture.matches(&el) {
            return;
        }
        if el.value().name() == "table" {
            if el.value().has_class("infobox", CaseSensitivity::CaseSensitive) {
                self.infobox.extend(infobox(el));
                // Sub-boxes and small wikitables (a car's race record) sit in label-less rows.
                for child in el.child_elements() {
                    self.find_tables(child);
                }
                return;
            }
            if el.value().has_class("wikitable", CaseSensitivity::CaseSensitive) {
                let section = self.sections.last().map(|s| s.heading.clone());
                self.tables.push(table(el, section));
                return;
            }
        }
        for child in el.child_elements() {
            self.find_tables(child);
        }
    }
}

/// Whether a heading names an apparatus section: one of [`SKIPPED_SECTIONS`], or a list of
/// them ("Explanatory notes and references", "Notes, citations and sources").
fn is_apparatus(heading: &str) -> bool {
    let lower = heading.to_lowercase();
    lower.replace(", and ", ",").replace(" and ", ",").split(',').all(|part| SKIPPED_SECTIONS.contains(&part.trim()))
}

/// The level and text of a heading element, if `el` is one.
fn heading(el: ElementRef<'_>) -> Option<(u8, String)> {
    let level_of = |e: ElementRef<'_>| match e.value().name() {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    };
    let h = if el.value().has_class("mw-heading", CaseSensitivity::CaseSensitive) {
        el.child_elements().find(|c| level_of(*c).is_some())?
    } else {
        el
    };
    Some((level_of(h)?, one_line(&lines(h))))
}

/// Elements that end a line of text.
#[rustfmt::skip]
const BLOCKS: &[&str] = &[
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "tr", "caption", "h1", "h2", "h3", "h4", "h5", "h6",
    "center", "section",
];

/// The text of an element as clean lines: furniture and tables left out, whitespace collapsed,
/// citation markers removed, empty lines dropped.
fn lines(el: ElementRef<'_>) -> Vec<String> {
    let mut raw = String::new();
    collect(el, &mut raw);
    raw.split('\n').map(clean_line).filter(|l| !l.is_empty()).collect()
}

fn collect(el: ElementRef<'_>, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.extend(t.chars().map(|c| if c.is_whitespace() { ' ' } else { c })),
            Node::Element(e) => {
                let Some(child) = ElementRef::wrap(child) else { continue };
                if e.name() == "table" || selectors().furniture.matches(&child) {
                    continue;
                }
                if e.name() == "br" {
                    out.push('\n');
                    continue;
                }
                let block = BLOCKS.contains(&e.name());
                if block {
                    out.push('\n');
                }
                collect(child, out);
                if block {
                    out.push('\n');
                } else if matches!(e.name(), "td" | "th") {
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

fn one_line(lines: &[String]) -> String {
    lines.join("; ")
}

/// Collapse whitespace and drop citation markers in one line.
fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if is_marker(&after[..close]) => rest = &after[close + 1..],
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // A removed marker can leave "word ." behind.
    collapsed.replace(" .", ".").replace(" ,", ",")
}

/// `1`, `23`, `a`, `note 2`, `nb 1`, `N 3`: what MediaWiki puts between brackets for a
/// reference or footnote.
fn is_marker(inner: &str) -> bool {
    let inner = inner.trim();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if all_digits(inner) || (inner.len() == 1 && inner.bytes().all(|b| b.is_ascii_lowercase())) {
        return true;
    }
    match inner.split_once(' ') {
        Some((prefix, n)) => {
            matches!(prefix.to_lowercase().as_str(), "note" | "nb" | "n" | "lower-alpha" | "upper-alpha")
                && (all_digits(n) || (n.len() == 1 && n.bytes().all(|b| b.is_ascii_alphabetic())))
        }
        None => false,
    }
}

/// The rows of a table element, through `thead`/`tbody`/`tfoot` but not into nested tables.
fn rows(table: ElementRef<'_>) -> Vec<ElementRef<'_>> {
    let mut out = Vec::new();
    for child in table.child_elements() {
        match child.value().name() {
            "tr" => out.push(child),
            "thead" | "tbody" | "tfoot" => out.extend(child.child_elements().filter(|r| r.value().name() == "tr")),
            _ => {}
        }
    }
    out
}

fn cells(row: ElementRef<'_>) -> impl Iterator<Item = ElementRef<'_>> {
    row.child_elements().filter(|c| matches!(c.value().name(), "td" | "th"))
}

fn infobox(table: ElementRef<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut group: Option<String> = None;
    for row in rows(table) {
        if selectors().furniture.matches(&row) {
            continue;
        }
        let (th, td): (Vec<ElementRef<'_>>, Vec<ElementRef<'_>>) = cells(row).partition(|c| c.value().name() == "th");
        let is_above = th.iter().any(|c| c.value().has_class("infobox-above", CaseSensitivity::CaseSensitive));
        match (th.first(), td.is_empty()) {
            (Some(label), false) => {
                let label = one_line(&lines(*label));
                let value = td.iter().map(|c| one_line(&lines(*c))).filter(|v| !v.is_empty()).collect::<Vec<_>>().join("; ");
                if label.is_empty() || value.is_empty() {
                    continue;
                }
                let key = match &group {
                    Some(g) => format!("{g} / {label}"),
                    None => label,
                };
                out.push((key, value));
            }
            (Some(header), true) if !is_above => {
                group = Some(one_line(&lines(*header))).filter(|g| !g.is_empty());
            }
            _ => {}
        }
    }
    out
}

fn span(cell: ElementRef<'_>, attr: &str) -> usize {
    cell.attr(attr).and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(1).clamp(1, MAX_SPAN)
}

fn table(el: ElementRef<'_>, section: Option<String>) -> Table {
    let caption = el.child_elements().find(|c| c.value().name() == "caption").map(|c| one_line(&lines(c))).filter(|c| !c.is_empty());
    // Cells still covering rows below, by column: (text, rows left).
    let mut carry: Vec<Option<(String, usize)>> = Vec::new();
    let mut grid: Vec<(Vec<String>, bool)> = Vec::new();
    for row in rows(el) {
        let mut out: Vec<String> = Vec::new();
        let mut header_only = true;
        let take_carried = |out: &mut Vec<String>, carry: &mut Vec<Option<(String, usize)>>| {
            while let Some(Some((text, left))) = carry.get_mut(out.len()) {
                out.push(text.clone());
                *left -= 1;
                if *left == 0 {
                    carry[out.len() - 1] = None;
                }
            }
        };
        for cell in cells(row) {
            take_carried(&mut out, &mut carry);
            if cell.value().name() == "td" {
                header_only = false;
            }
            let text = lines(cell).join("\n");
            let (cols, down) = (span(cell, "colspan"), span(cell, "rowspan"));
            for _ in 0..cols {
                if down > 1 {
                    if carry.len() <= out.len() {
                        carry.resize(out.len() + 1, None);
                    }
                    carry[out.len()] = Some((text.clone(), down - 1));
                }
                out.push(text.clone());
            }
        }
        // Cells spanning down into columns after this row's last cell.
        while out.len() < carry.len() {
            if carry[out.len()].is_some() {
                take_carried(&mut out, &mut carry);
            } else {
                out.push(String::new());
            }
        }
        while out.last().is_some_and(String::is_empty) {
            out.pop();
        }
        if !out.is_empty() {
            grid.push((out, header_only));
        }
    }
    let width = grid.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
    // A header-only row with one text across the whole table labels a group of rows (a track
    // layout in a lap-record table); it is not a column header.
    let is_label = |row: &Vec<String>| width > 1 && row.len() == width && row.iter().all(|c| *c == row[0]);
    let data_start = grid.iter().position(|(_, header_only)| !header_only).unwrap_or(grid.len());
    let mut headers: Vec<String> = Vec::new();
    for (row, _) in grid[..data_start].iter().filter(|(r, _)| !is_label(r)) {
        let row: Vec<String> = row.iter().map(|c| c.replace('\n', " ")).collect();
        if headers.len() < row.len() {
            headers.resize(row.len(), String::new());
        }
        for (h, cell) in headers.iter_mut().zip(&row) {
            if !cell.is_empty() && !h.ends_with(cell.as_str()) {
                if !h.is_empty() {
                    h.push(' ');
                }
                h.push_str(cell);
            }
        }
    }
    let rows = grid
        .into_iter()
        .skip(data_start)
        .filter(|(_, header_only)| !header_only)
        .map(|(r, _)| r.into_iter().map(|c| c.replace('\n', "; ")).collect())
        .collect();
    Table { caption, section, headers, rows }
}

/// A permanent link to one revision: `https://en.wikipedia.org/w/index.php?title=..&oldid=..`.
pub fn revision_url(title: &str, revision: u64) -> String {
    let mut encoded = String::new();
    for b in title.replace(' ', "_").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' | b',' | b':' => encoded.push(b as char),
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    format!("https://en.wikipedia.org/w/index.php?title={encoded}&oldid={revision}")
}

/// Read `_PAGES.tsv` (columns `file` and `revision`, by header name) into file → revision.
fn read_pages(path: &Path, rejects: &mut Vec<Reject>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            rejects.push(Reject::file(path, e.to_string()));
            return out;
        }
    };
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines.next().map(|(_, h)| h.split('\t').collect()).unwrap_or_default();
    let (Some(file_col), Some(rev_col)) = (header.iter().position(|h| *h == "file"), header.iter().position(|h| *h == "revision")) else {
        rejects.push(Reject::line(path, 1, "header lacks `file` and `revision` columns"));
        return out;
    };
    for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        match (fields.get(file_col), fields.get(rev_col).and_then(|r| r.trim().parse::<u64>().ok())) {
            (Some(file), Some(rev)) => {
                out.insert(file.to_string(), rev);
            }
            _ => rejects.push(Reject::line(path, i + 1, "expected a file name and a numeric revision")),
        }
    }
    out
}

/// Extract every `.html` file in `dir` (in parallel), sorted by file name. `_PAGES.tsv`, when
/// present, gives each file's revision, and so its URL ([`revision_url`]); otherwise the page's
/// canonical link is used. Files that cannot be read or are not articles become rejects.
pub fn load_folder(dir: &Path) -> (Vec<Article>, Vec<Reject>) {
    let mut rejects = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| match e {
                Ok(e) => Some(e.path()),
                Err(err) => {
                    rejects.push(Reject::file(dir, err.to_string()));
                    None
                }
            })
            .filter(|p| p.extension().is_some_and(|e| e == "html"))
            .collect(),
        Err(e) => {
            rejects.push(Reject::file(dir, e.to_string()));
            return (Vec::new(), rejects);
        }
    };
    files.sort();
    let pages = read_pages(&dir.join("_PAGES.tsv"), &mut rejects);
    let results: Vec<Result<Article, Reject>> = files
        .par_iter()
        .map(|path| {
            let reject = |reason: String| Reject::file(path, reason);
            let html = std::fs::read_to_string(path).map_err(|e| reject(e.to_string()))?;
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let title = path.file_stem().and_then(|n| n.to_str()).unwrap_or_default();
            let url = pages.get(name).map(|rev| revision_url(title, *rev));
            extract(&html, url.as_deref()).map_err(reject)
        })
        .collect();
    let mut articles = Vec::new();
    for r in results {
        match r {
            Ok(a) => articles.push(a),
            Err(r) => rejects.push(r),
        }
    }
    (articles, rejects)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r##"<!DOCTYPE html><html><head><title>Test GP - Wikipedia</title>
<link rel="canonical" href="https://en.wikipedia.org/wiki/Test_GP"></head><body>
<a class="mw-jump-link" href="#bodyContent">Jump to navigation</a>
<h1 id="firstHeading"><span class="mw-page-title-main">Test GP</span></h1>
<div id="mw-content-text"><div class="mw-parser-output">
<style>.mw-parser-output .x{color:red}</style>
<div class="shortdescription nomobile noexcerpt noprint searchaux" style="display:none">Race</div>
<table class="infobox"><tbody>
<tr><th class="infobox-above" colspan="2">Test GP</th></tr>
<tr><th class="infobox-header" colspan="2">Race details</th></tr>
<tr><th>Date</th><td>1 May 2020<sup class="reference">[1]</sup></td></tr>
<tr><th class="infobox-header" colspan="3">Pole position</th></tr>
<tr><th>Driver</th><td>A. Driver</td><td>Team A</td></tr>
</tbody></table>
<p>The <b>Test GP</b> was a race.<sup class="reference"><a>[1]</a></sup> It rained.[2]</p>
<h2><span class="mw-headline">Report</span><span class="mw-editsection"><span>[</span><a>edit</a><span>]</span></span></h2>
<div class="hatnote navigation-not-searchable">Main article: Elsewhere</div>
<p>First   line
 continues.</p><ul><li>One</li><li>Two<sup class="noprint Inline-Template">[citation needed]</sup></li></ul>
<h3><span class="mw-headline">Classification</span></h3>
<table class="wikitable"><caption>Results</caption><tbody>
<tr><th rowspan="2">Pos</th><th colspan="2">Entrant</th></tr>
<tr><th>Driver</th><th>Team</th></tr>
<tr><td>1</td><td>A. Driver</td><td rowspan="2">Team A</td></tr>
<tr><td>2</td><td>B. Driver</td></tr>
<tr><th colspan="3">Source:</th></tr>
</tbody></table>
<h2><span class="mw-headline">References</span></h2>
<div class="reflist"><ol class="references"><li>A source</li></ol></div>
<h3><span class="mw-headline">Sub of references</span></h3><p>Dropped too.</p>
<h2><span class="mw-headline">Legacy</span></h2><p>Kept.</p>
<div class="navbox">Nav stuff</div>
</div></div></body></html>"##;

    #[test]
    fn extracts_structure_and_drops_furniture() {
        let a = extract(PAGE, None).expect("extracts");
        assert_eq!(a.title, "Test GP");
        assert_eq!(a.url.as_deref(), Some("https://en.wikipedia.org/wiki/Test_GP"));
        assert_eq!(a.lead, "The Test GP was a race. It rained.");
        let heads: Vec<(&str, u8, &str)> = a.sections.iter().map(|s| (s.heading.as_str(), s.level, s.text.as_str())).collect();
        assert_eq!(heads, [("Report", 2, "First line continues.\nOne\nTwo"), ("Classification", 3, ""), ("Legacy", 2, "Kept.")]);
        assert_eq!(
            a.infobox,
            [("Race details / Date".to_string(), "1 May 2020".to_string()), ("Pole position / Driver".into(), "A. Driver; Team A".into())]
        );
        assert_eq!(a.tables.len(), 1);
        let t = &a.tables[0];
        assert_eq!(t.caption.as_deref(), Some("Results"));
        assert_eq!(t.section.as_deref(), Some("Classification"));
        assert_eq!(t.headers, ["Pos", "Entrant Driver", "Entrant Team"]);
        assert_eq!(t.rows, [vec!["1", "A. Driver", "Team A"], vec!["2", "B. Driver", "Team A"]]);
    }

    #[test]
    fn non_articles_are_errors() {
        assert!(extract("", None).is_err());
        assert!(extract("   \n", None).is_err());
        assert!(extract(r#"{"a":1}"#, None).is_err());
        assert!(extract("Just some plain text.", None).is_err());
        assert!(extract("<html><body><p>No article here.</p></body></html>", None).is_err());
        // Nesting deep enough to exhaust the stack of the recursive walks is refused first.
        let deep = format!(
            r#"<html><body><h1 id="firstHeading">T</h1><div id="mw-content-text"><div class="mw-parser-output">{}x{}</div></div></body></html>"#,
            "<div>".repeat(5000),
            "</div>".repeat(5000)
        );
        let err = extract(&deep, None).expect_err("too deep");
        assert!(err.contains("nest") && err.contains("512"), "{err}");
        let shallow = format!(
            r#"<html><body><h1 id="firstHeading">T</h1><div id="mw-content-text"><div class="mw-parser-output">{}<p>Lead.</p>{}</div></div></body></html>"#,
            "<div>".repeat(400),
            "</div>".repeat(400)
        );
        assert_eq!(extract(&shallow, None).expect("400 deep is read").lead, "Lead.");
    }

    #[test]
    fn apparatus_headings_and_group_label_rows() {
        assert!(is_apparatus("Explanatory notes and references"));
        assert!(is_apparatus("Notes, citations, and sources"));
        assert!(!is_apparatus("Notes on the 1994 season"));
        let html = r#"<html><body><h1 id="firstHeading">T</h1><div id="mw-content-text"><div class="mw-parser-output">
<p>Lead.</p><table class="wikitable"><tr><th>Category</th><th>Time</th></tr>
<tr><th colspan="2">Grand Prix Circuit</th></tr><tr><td>F1</td><td>1:43.009<br>(2019)</td></tr>
<tr><th colspan="2">National Circuit</th></tr><tr><td>F2</td><td>1:55.000</td></tr></table></div></div></body></html>"#;
        let t = &extract(html, None).expect("extracts").tables[0];
        assert_eq!(t.headers, ["Category", "Time"]);
        assert_eq!(t.rows, [vec!["F1", "1:43.009; (2019)"], vec!["F2", "1:55.000"]]);
    }

    #[test]
    fn markers_and_urls() {
        assert_eq!(clean_line("won [1] the race[a][note 3], [b]ut [not a marker] ok"), "won the race, ut [not a marker] ok");
        assert_eq!(revision_url("107% rule", 5), "https://en.wikipedia.org/w/index.php?title=107%25_rule&oldid=5");
        assert_eq!(
            revision_url("Hamilton–Rosberg rivalry", 7),
            "https://en.wikipedia.org/w/index.php?title=Hamilton%E2%80%93Rosberg_rivalry&oldid=7"
        );
    }
}
