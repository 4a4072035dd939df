//! scratch
use phase1_curation::article::*;

#[test]
fn explore() {
    let dir = phase1_curation::data_dir().join("wikipedia");
    let t0 = std::time::Instant::now();
    let (arts, rej) = load_folder(&dir);
    println!("{} articles, {} rejects in {:?}", arts.len(), rej.len(), t0.elapsed());
    for r in &rej { println!("reject {r}"); }
    for a in &arts {
        let words: usize = a.lead.split_whitespace().count() + a.sections.iter().map(|s| s.text.split_whitespace().count()).sum::<usize>();
        println!("== {} | {:?} | lead {} chars | {} sections | {} infobox | {} tables | {} words", a.title, a.url, a.lead.len(), a.sections.len(), a.infobox.len(), a.tables.len(), words);
        println!("   sections: {:?}", a.sections.iter().map(|s| format!("{}{}", "#".repeat(s.level as usize), s.heading)).collect::<Vec<_>>());
        for t in &a.tables { println!("   table {:?} [{:?}] headers {:?} rows {} first {:?}", t.caption, t.section, t.headers, t.rows.len(), t.rows.first()); }
    }
    let a = arts.iter().find(|a| a.title == "2021 Abu Dhabi Grand Prix").expect("abu dhabi");
    println!("LEAD: {}", a.lead);
    for (k, v) in &a.infobox { println!("  IB {k} = {v}"); }
    for s in &a.sections { println!("--- {} ({})\n{}", s.heading, s.level, s.text.chars().take(600).collect::<String>()); }
}
