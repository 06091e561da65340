//! Which column holds each field of a table, for the SQL warehouses: a field
//! whose name cannot be its column's (a collision, a NUL, an empty or
//! reserved name, a name too long) gets a deterministic column of its own,
//! recorded in [`COLUMNS_TABLE`]; fields past the dialect's column budget go
//! into one JSON column, [`OVERFLOW_COLUMN`]. Every lookup is a hash lookup,
//! so checking a batch of n fields costs O(n).

use std::collections::{HashMap, HashSet};

/// Where a field lives when its name cannot be its column's: one row per
/// renamed field.
pub(crate) const COLUMNS_TABLE: &str = "_incsync_columns";

/// The JSON object that holds a row's fields beyond the column budget (and,
/// in PostgreSQL, values that do not fit their column's type).
pub(crate) const OVERFLOW_COLUMN: &str = "_incsync_overflow";

/// Names the host keeps for itself, compared case-insensitively in every
/// warehouse (a reader should not have to know the dialect to spot them).
pub(crate) fn is_reserved(name: &str) -> bool {
    name.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("_incsync"))
}

/// How a warehouse names columns: what counts as the same name, how long a
/// name may be, and how many columns a table may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    /// The most columns a table gets before fields overflow.
    pub budget: usize,
    /// SQLite compares column names case-insensitively; PostgreSQL compares
    /// quoted names exactly.
    pub case_insensitive: bool,
    /// The longest name the warehouse keeps whole (PostgreSQL truncates
    /// identifiers to 63 bytes, so two long names can become one).
    pub max_bytes: Option<usize>,
}

impl Naming {
    /// SQLite allows 2,000 columns and names of any length.
    pub const SQLITE: Naming = Naming {
        budget: 1000,
        case_insensitive: true,
        max_bytes: None,
    };

    /// PostgreSQL allows 1,600 columns (dropped ones count too) and 63-byte
    /// names, but a row must fit in an 8 KB page: 1,500 `bigint` columns
    /// failed with "row is too big". 900 columns of 8-byte values, with the
    /// host's own columns and the null bitmap, still fit.
    pub const POSTGRES: Naming = Naming {
        budget: 900,
        case_insensitive: false,
        max_bytes: Some(63),
    };

    /// The name as the warehouse compares it: two names with the same key
    /// are one column.
    fn key(self, name: &str) -> String {
        let name = match self.max_bytes {
            Some(max) => &name[..name.floor_char_boundary(max)],
            None => name,
        };
        if self.case_insensitive {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    }

    /// Whether the warehouse keeps `name` as it is, NUL-free and whole.
    fn keeps(self, name: &str) -> bool {
        !name.is_empty()
            && !name.contains('\0')
            && !is_reserved(name)
            && self.max_bytes.is_none_or(|max| name.len() <= max)
    }
}

/// Where one field of a table is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// In this column.
    Column(String),
    /// As a key of the row's overflow JSON object.
    Overflow,
}

/// A table's columns, and which field each holds.
#[derive(Debug)]
pub(crate) struct TableColumns {
    naming: Naming,
    /// The columns, as the warehouse names them.
    exact: HashSet<String>,
    /// The columns by [`Naming::key`]: the warehouse's notion of a name
    /// collision.
    folded: HashSet<String>,
    /// Fields stored under another name (from [`COLUMNS_TABLE`]) or in the
    /// overflow object.
    renamed: HashMap<String, Slot>,
    /// Columns that hold a renamed field: never a field of the same name.
    targets: HashSet<String>,
    /// The primary key's fields and their columns.
    pub keys: Vec<(String, String)>,
    /// Columns not reserved by the host: what counts against the budget.
    user_columns: usize,
}

impl TableColumns {
    /// A table with no columns yet.
    pub fn new(naming: Naming) -> TableColumns {
        TableColumns {
            naming,
            exact: HashSet::new(),
            folded: HashSet::new(),
            renamed: HashMap::new(),
            targets: HashSet::new(),
            keys: Vec::new(),
            user_columns: 0,
        }
    }

    /// Whether the table has no columns (it does not exist yet).
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Whether a column of this name (as the warehouse compares names)
    /// exists.
    pub fn has_column(&self, column: &str) -> bool {
        self.folded.contains(&self.naming.key(column))
    }

    /// Records a column the table has.
    pub fn add_column(&mut self, column: &str) {
        if !is_reserved(column) {
            self.user_columns += 1;
        }
        self.exact.insert(column.to_owned());
        self.folded.insert(self.naming.key(column));
    }

    /// Records that `field` is stored in `slot`, not under its own name.
    pub fn rename(&mut self, field: &str, slot: Slot) {
        if let Slot::Column(c) = &slot {
            self.targets.insert(c.clone());
        }
        self.renamed.insert(field.to_owned(), slot);
    }

    /// The slot of a field that has one already.
    pub fn slot(&self, field: &str) -> Option<Slot> {
        if let Some(slot) = self.renamed.get(field) {
            return Some(slot.clone());
        }
        (self.exact.contains(field) && !self.targets.contains(field) && self.naming.keeps(field))
            .then(|| Slot::Column(field.to_owned()))
    }

    /// The column a new field gets: its own name if the warehouse keeps it
    /// and it is free, else a deterministic variant (`ID__3f2a9c1e`, from the
    /// name's SHA-256, short enough to be kept whole); the overflow object
    /// once the budget is spent (unless `always_column`, for keys).
    pub fn allocate(&self, field: &str, always_column: bool) -> Slot {
        if !always_column && self.user_columns >= self.naming.budget {
            return Slot::Overflow;
        }
        if self.naming.keeps(field) && !self.has_column(field) {
            return Slot::Column(field.to_owned());
        }
        let mut column = derived_name(field, self.naming);
        let candidate = column.clone();
        let mut n = 2;
        while self.has_column(&column) {
            column = format!("{candidate}_{n}");
            n += 1;
        }
        Slot::Column(column)
    }
}

/// `field` made safe: NULs replaced, a reserved prefix escaped, cut to fit
/// the dialect's length with room for a suffix, then `__` and 8 hex digits of
/// the full name's SHA-256, so that different fields get different names.
pub(crate) fn derived_name(field: &str, naming: Naming) -> String {
    use sha2::Digest;
    let hash = hex::encode(&sha2::Sha256::digest(field.as_bytes())[..4]);
    let mut base = field.replace('\0', "_");
    if is_reserved(&base) {
        base.insert(0, 'x');
    }
    if let Some(max) = naming.max_bytes {
        // `__` + 8 hex digits, and room for a `_n` of a (rare) second round.
        let room = max - 10 - 4;
        base.truncate(base.floor_char_boundary(room));
    }
    format!("{base}__{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(naming: Naming, columns: &[&str]) -> TableColumns {
        let mut t = TableColumns::new(naming);
        for c in columns {
            t.add_column(c);
        }
        t
    }

    #[test]
    fn sqlite_folds_case_and_postgres_does_not() {
        let sqlite = table(Naming::SQLITE, &["id"]);
        assert_ne!(sqlite.allocate("ID", false), Slot::Column("ID".into()));
        let pg = table(Naming::POSTGRES, &["id"]);
        assert_eq!(pg.allocate("ID", false), Slot::Column("ID".into()));
    }

    #[test]
    fn postgres_names_equal_in_their_first_63_bytes_get_distinct_columns() {
        let long_a = format!("{}a", "x".repeat(70));
        let long_b = format!("{}b", "x".repeat(70));
        let mut t = table(Naming::POSTGRES, &["id"]);
        let Slot::Column(a) = t.allocate(&long_a, false) else {
            panic!("a column")
        };
        t.add_column(&a);
        t.rename(&long_a, Slot::Column(a.clone()));
        let Slot::Column(b) = t.allocate(&long_b, false) else {
            panic!("a column")
        };
        assert_ne!(a, b);
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        // A multi-byte character is never cut in half.
        let wide = "é".repeat(40);
        let Slot::Column(w) = t.allocate(&wide, false) else {
            panic!("a column")
        };
        assert!(w.len() <= 63, "{w}");
    }

    #[test]
    fn odd_names_get_safe_deterministic_columns() {
        let t = table(Naming::POSTGRES, &["id"]);
        for field in ["", "a\0b", "_INCSYNC_deleted", "_incsync_overflow"] {
            let Slot::Column(c) = t.allocate(field, false) else {
                panic!("a column")
            };
            assert!(
                !c.is_empty() && !c.contains('\0') && !is_reserved(&c),
                "{c:?}"
            );
            assert_eq!(t.allocate(field, false), Slot::Column(c), "deterministic");
        }
    }

    #[test]
    fn fields_past_the_budget_overflow_but_keys_do_not() {
        let names: Vec<String> = (0..Naming::POSTGRES.budget)
            .map(|i| format!("f{i}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let t = table(Naming::POSTGRES, &refs);
        assert_eq!(t.allocate("more", false), Slot::Overflow);
        assert_eq!(t.allocate("more", true), Slot::Column("more".into()));
    }
}
