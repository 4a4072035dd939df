//! Referential checks over a loaded [`F1Db`]: every id a race, result, standing or entity names
//! must exist in its table (F1DB's own build enforces the same foreign keys in its SQLite export).

use super::{F1Db, FastestLap, GridPosition, PitStop, QualifyingResult, Race, RaceResult, Reject};

/// A table an id can point into.
#[derive(Clone, Copy)]
enum Table {
    Drivers,
    Constructors,
    Circuits,
    GrandsPrix,
    Countries,
    EngineManufacturers,
    TyreManufacturers,
}

impl Table {
    fn folder(self) -> &'static str {
        match self {
            Table::Drivers => "drivers/",
            Table::Constructors => "constructors/",
            Table::Circuits => "circuits/",
            Table::GrandsPrix => "grands-prix/",
            Table::Countries => "countries/",
            Table::EngineManufacturers => "engine-manufacturers/",
            Table::TyreManufacturers => "tyre-manufacturers/",
        }
    }

    fn contains(self, db: &F1Db, id: &str) -> bool {
        match self {
            Table::Drivers => db.drivers.contains_key(id),
            Table::Constructors => db.constructors.contains_key(id),
            Table::Circuits => db.circuits.contains_key(id),
            Table::GrandsPrix => db.grands_prix.contains_key(id),
            Table::Countries => db.countries.contains_key(id),
            Table::EngineManufacturers => db.engine_manufacturers.contains_key(id),
            Table::TyreManufacturers => db.tyre_manufacturers.contains_key(id),
        }
    }
}

struct Checker<'a> {
    db: &'a F1Db,
    rejects: Vec<Reject>,
}

impl Checker<'_> {
    /// Record a reject if `id` (the value of `field`) is not in `table`.
    fn expect(&mut self, path: &str, record: &dyn Fn() -> String, field: &str, id: &str, table: Table) {
        if !table.contains(self.db, id) {
            self.rejects.push(Reject {
                source: path.to_owned(),
                record: Some(record()),
                reason: format!("{field} `{id}` is not in {}", table.folder()),
            });
        }
    }

    /// The four ids every line of a per-race file carries; `name` names the race.
    fn lines<T: Entry>(&mut self, race: &Race, name: &str, file: &str, rows: &[T]) {
        let path = format!("{}/{file}.yml", race.source);
        for row in rows {
            let record = || format!("{name}, {file} #{}", row.order());
            let [driver, constructor, engine, tyre] = row.ids();
            self.expect(&path, &record, "driverId", driver, Table::Drivers);
            self.expect(&path, &record, "constructorId", constructor, Table::Constructors);
            self.expect(&path, &record, "engineManufacturerId", engine, Table::EngineManufacturers);
            self.expect(&path, &record, "tyreManufacturerId", tyre, Table::TyreManufacturers);
        }
    }
}

pub(super) fn check_references(db: &F1Db) -> Vec<Reject> {
    let mut c = Checker { db, rejects: Vec::new() };
    let root = &db.data_root;

    for d in db.drivers.values() {
        let path = format!("{root}drivers/{}.yml", d.id);
        let rec = || d.id.clone();
        c.expect(&path, &rec, "countryOfBirthCountryId", &d.country_of_birth_country_id, Table::Countries);
        c.expect(&path, &rec, "nationalityCountryId", &d.nationality_country_id, Table::Countries);
        if let Some(second) = &d.second_nationality_country_id {
            c.expect(&path, &rec, "secondNationalityCountryId", second, Table::Countries);
        }
        for rel in &d.family_relationships {
            c.expect(&path, &rec, "familyRelationships.driverId", &rel.driver_id, Table::Drivers);
        }
    }
    for k in db.constructors.values() {
        let path = format!("{root}constructors/{}.yml", k.id);
        let rec = || k.id.clone();
        c.expect(&path, &rec, "countryId", &k.country_id, Table::Countries);
        for entry in &k.chronology {
            c.expect(&path, &rec, "chronology.constructorId", &entry.constructor_id, Table::Constructors);
        }
    }
    for x in db.circuits.values() {
        let path = format!("{root}circuits/{}.yml", x.id);
        c.expect(&path, &|| x.id.clone(), "countryId", &x.country_id, Table::Countries);
    }
    for g in db.grands_prix.values() {
        if let Some(country) = &g.country_id {
            let path = format!("{root}grands-prix/{}.yml", g.id);
            c.expect(&path, &|| g.id.clone(), "countryId", country, Table::Countries);
        }
    }
    for (folder, table) in
        [("engine-manufacturers", &db.engine_manufacturers), ("tyre-manufacturers", &db.tyre_manufacturers)]
    {
        for m in table.values() {
            let path = format!("{root}{folder}/{}.yml", m.id);
            c.expect(&path, &|| m.id.clone(), "countryId", &m.country_id, Table::Countries);
        }
    }

    for season in db.seasons.values() {
        let path = format!("{root}seasons/{}/driver-standings.yml", season.year);
        for s in &season.driver_standings {
            let rec = || format!("{} drivers' standings #{}", season.year, s.position_display_order);
            c.expect(&path, &rec, "driverId", &s.driver_id, Table::Drivers);
        }
        let path = format!("{root}seasons/{}/constructor-standings.yml", season.year);
        for s in &season.constructor_standings {
            let rec = || format!("{} constructors' standings #{}", season.year, s.position_display_order);
            c.expect(&path, &rec, "constructorId", &s.constructor_id, Table::Constructors);
            c.expect(&path, &rec, "engineManufacturerId", &s.engine_manufacturer_id, Table::EngineManufacturers);
        }
    }

    for race in &db.races {
        let name = format!("{} round {} {}", race.year, race.round, race.grand_prix_id);
        let path = format!("{}/race.yml", race.source);
        let rec = || name.clone();
        c.expect(&path, &rec, "grandPrixId", &race.grand_prix_id, Table::GrandsPrix);
        c.expect(&path, &rec, "circuitId", &race.circuit_id, Table::Circuits);
        if let Some(circuit) = db.circuits.get(&race.circuit_id) {
            if !circuit.layouts.iter().any(|l| l.id == race.circuit_layout_id) {
                c.rejects.push(Reject {
                    source: path.clone(),
                    record: Some(name.clone()),
                    reason: format!(
                        "circuitLayoutId `{}` is not a layout of circuit `{}`",
                        race.circuit_layout_id, circuit.id
                    ),
                });
            }
        }

        c.lines(race, &name, "race-results", &race.results);
        c.lines(race, &name, "qualifying-results", &race.qualifying);
        c.lines(race, &name, "sprint-race-results", &race.sprint_results);
        c.lines(race, &name, "starting-grid-positions", &race.grid);
        c.lines(race, &name, "sprint-starting-grid-positions", &race.sprint_grid);
        c.lines(race, &name, "pit-stops", &race.pit_stops);
        c.lines(race, &name, "fastest-laps", &race.fastest_laps);

        let path = format!("{}/driver-standings.yml", race.source);
        for s in &race.driver_standings {
            let rec = || format!("{name}, driver-standings #{}", s.position_display_order);
            c.expect(&path, &rec, "driverId", &s.driver_id, Table::Drivers);
        }
        let path = format!("{}/constructor-standings.yml", race.source);
        for s in &race.constructor_standings {
            let rec = || format!("{name}, constructor-standings #{}", s.position_display_order);
            c.expect(&path, &rec, "constructorId", &s.constructor_id, Table::Constructors);
            c.expect(&path, &rec, "engineManufacturerId", &s.engine_manufacturer_id, Table::EngineManufacturers);
        }
    }
    c.rejects
}

/// A per-race line naming a driver's entry: its place in the file and its four ids.
trait Entry {
    fn order(&self) -> u32;
    fn ids(&self) -> [&str; 4];
}

macro_rules! impl_entry {
    ($($t:ty),*) => {$(
        impl Entry for $t {
            fn order(&self) -> u32 {
                self.position_display_order
            }
            fn ids(&self) -> [&str; 4] {
                [&self.driver_id, &self.constructor_id, &self.engine_manufacturer_id, &self.tyre_manufacturer_id]
            }
        }
    )*};
}
impl_entry!(RaceResult, QualifyingResult, GridPosition, PitStop, FastestLap);
