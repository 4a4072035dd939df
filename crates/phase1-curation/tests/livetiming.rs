//! scratch
use phase1_curation::livetiming::*;

#[test]
fn explore() {
    let root = phase1_curation::data_dir().join("livetiming");
    for dir in discover_sessions(&root).expect("discover") {
        let s = load_session(&dir).expect("load");
        println!("== {} | {:?}", dir.display(), s.info);
        println!("drivers {} laps {} stints {} stops {} rcm {} ts {} rejects {}", s.drivers.len(), s.laps.len(), s.stints.len(), s.pit_stops.len(), s.race_control.len(), s.track_status.len(), s.rejects.len());
        for r in s.rejects.iter().take(5) { println!("  reject {r}"); }
        let mut bad = 0; let mut full = 0; let mut no_time = 0;
        for l in &s.laps {
            if let (Some(t), [Some(a), Some(b), Some(c)]) = (l.lap_time_ms, l.sector_ms) {
                full += 1;
                if (a + b + c).abs_diff(t) > 5 { bad += 1; if bad < 6 { println!("  mismatch {:?}", l); } }
            }
            if l.lap_time_ms.is_none() { no_time += 1; }
        }
        println!("  full laps {full}, sector-sum mismatches {bad}, laps without time {no_time}");
        let mut per: std::collections::BTreeMap<&str, (u32, u32, u32)> = Default::default();
        for l in &s.laps { let e = per.entry(&l.driver).or_default(); e.0 += 1; e.1 = e.1.max(l.lap_number); }
        for st in &s.stints { per.entry(&st.driver).or_default().2 += st.laps; }
        println!("  per driver (laps, max, stint laps): {:?}", per);
        for st in s.stints.iter().filter(|s| s.driver == "44" || s.driver == "81") { println!("  {:?}", st); }
        for p in s.pit_stops.iter().take(40) { println!("  {:?}", p); }
        for l in s.laps.iter().filter(|l| l.pit_in || l.pit_out).take(12) { println!("  pitflag {:?}", l); }
        for m in s.race_control.iter().filter(|m| m.category == "SafetyCar" || m.driver.is_some()).take(8) { println!("  {:?}", m); }
        let comps: std::collections::BTreeSet<_> = s.stints.iter().map(|s| s.compound.clone()).collect();
        println!("  compounds {:?}", comps);
    }
}
