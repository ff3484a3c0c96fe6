//! The row counts a dump's descriptor records: `count(*)` of every table pg_dump dumps data of
//! (ordinary and partitioned tables outside the system schemas, not of an extension), in the
//! dump's snapshot, worked out from the rows counted in pg_dump's output (`rows`), which holds
//! each table's own rows only.
//!
//! `count(*)` of a table with inheritance children or partitions counts theirs too: a table's
//! count is the sum of the own rows of every table in its tree (each once, as PostgreSQL scans
//! them; temporary ones left out, as another session's are invisible to a scan). A table with a
//! member whose rows the output does not hold (a foreign table, a table pg_dump did not dump,
//! or every table when the output could not be read) is left to a `count(*)` query.

use std::collections::{HashMap, HashSet};

use super::error::DumpError;
use super::rows::Counts;
use crate::replication::ReplicationClient;
use crate::repo::dumps::TableRows;

/// One relation that holds rows or may be in a table's tree.
#[derive(Clone, Debug)]
pub struct Relation {
    /// Its oid.
    pub oid: u32,
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// `r` (ordinary), `p` (partitioned: no rows of its own) or `f` (foreign).
    pub kind: char,
    /// The descriptor records its count.
    pub recorded: bool,
}

/// The relations and the inheritance edges (child, parent) of the session's snapshot.
pub struct Catalog {
    relations: Vec<Relation>,
    children: HashMap<u32, Vec<u32>>,
}

impl Catalog {
    /// Reads them in `session` (in the dump's snapshot).
    pub async fn read(session: &mut ReplicationClient) -> Result<Catalog, DumpError> {
        let rows = session
            .query(
                "select c.oid, n.nspname, c.relname, c.relkind, \
                 c.relkind in ('r', 'p') \
                 and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' \
                 and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass \
                                 and d.objid = c.oid and d.deptype = 'e') \
                 from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                 where c.relkind in ('r', 'p', 'f') and c.relpersistence <> 't' \
                 order by 2, 3",
            )
            .await?;
        let bad = |what: &str| DumpError::Unexpected(format!("the catalog query returned {what}"));
        let mut relations = Vec::with_capacity(rows.len());
        for row in rows {
            let [Some(oid), Some(schema), Some(name), Some(kind), Some(recorded)] =
                <[Option<String>; 5]>::try_from(row).map_err(|_| bad("a row of another shape"))?
            else {
                return Err(bad("a NULL"));
            };
            relations.push(Relation {
                oid: oid.parse().map_err(|_| bad(&format!("the oid {oid:?}")))?,
                schema,
                name,
                kind: kind.chars().next().unwrap_or('?'),
                recorded: recorded == "t",
            });
        }
        let edges = session.query("select inhrelid, inhparent from pg_inherits").await?;
        let mut pairs = Vec::with_capacity(edges.len());
        for e in edges {
            let [Some(child), Some(parent)] = <[Option<String>; 2]>::try_from(e).unwrap_or_default() else {
                return Err(bad("an inheritance edge with a NULL"));
            };
            let (Ok(child), Ok(parent)) = (child.parse(), parent.parse()) else {
                return Err(bad("an inheritance edge that is not two oids"));
            };
            pairs.push((child, parent));
        }
        Ok(Catalog::new(relations, pairs))
    }

    /// From relations and (child, parent) edges.
    pub fn new(relations: Vec<Relation>, edges: Vec<(u32, u32)>) -> Catalog {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (child, parent) in edges {
            children.entry(parent).or_default().push(child);
        }
        Catalog { relations, children }
    }

    /// Each recorded table (in the catalog's order) and its count from each table's own rows in
    /// `own`, with whether that is known (where not, a `count(*)` query must tell).
    pub fn totals(&self, own: &Counts) -> Vec<(TableRows, bool)> {
        let by_oid: HashMap<u32, &Relation> = self.relations.iter().map(|r| (r.oid, r)).collect();
        let mut out = Vec::new();
        for table in self.relations.iter().filter(|r| r.recorded) {
            let rows = self.tree_rows(table.oid, &by_oid, own);
            let t = TableRows {
                schema: table.schema.clone(),
                table: table.name.clone(),
                rows: rows.unwrap_or(0),
            };
            out.push((t, rows.is_some()));
        }
        out
    }

    /// The own rows of every table in `root`'s tree, each once; none if one is not known.
    fn tree_rows(&self, root: u32, by_oid: &HashMap<u32, &Relation>, own: &Counts) -> Option<u64> {
        let mut seen = HashSet::from([root]);
        let mut todo = vec![root];
        let mut total = 0u64;
        while let Some(oid) = todo.pop() {
            // A member not listed is temporary (invisible to the scan), or of a kind without rows.
            if let Some(rel) = by_oid.get(&oid) {
                total += match rel.kind {
                    'p' => 0,
                    'r' => *own.get(&(rel.schema.clone(), rel.name.clone()))?,
                    _ => return None,
                };
            }
            for &child in self.children.get(&oid).into_iter().flatten() {
                if seen.insert(child) {
                    todo.push(child);
                }
            }
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(oid: u32, name: &str, kind: char, recorded: bool) -> Relation {
        Relation { oid, schema: "s".into(), name: name.into(), kind, recorded }
    }

    fn own(pairs: &[(&str, u64)]) -> Counts {
        pairs.iter().map(|(n, r)| (("s".to_string(), n.to_string()), *r)).collect()
    }

    #[test]
    fn a_tables_count_takes_in_its_whole_tree_once() {
        // p (partitioned) → p1, p2; p2 (partitioned) → p21; inheritance: a → b, c; b → d; c → d.
        let catalog = Catalog::new(
            vec![
                rel(1, "p", 'p', true),
                rel(2, "p1", 'r', true),
                rel(3, "p2", 'p', true),
                rel(4, "p21", 'r', true),
                rel(10, "a", 'r', true),
                rel(11, "b", 'r', true),
                rel(12, "c", 'r', true),
                rel(13, "d", 'r', true),
                rel(20, "plain", 'r', true),
                rel(30, "ext_table", 'r', false),
            ],
            vec![(2, 1), (3, 1), (4, 3), (11, 10), (12, 10), (13, 11), (13, 12), (99, 10)],
        );
        let counts = own(&[
            ("p1", 5),
            ("p21", 7),
            ("a", 1),
            ("b", 10),
            ("c", 100),
            ("d", 1000),
            ("plain", 0),
            ("ext_table", 4),
        ]);
        let totals = catalog.totals(&counts);
        assert!(totals.iter().all(|(_, known)| *known));
        let got: Vec<(&str, u64)> = totals.iter().map(|(t, _)| (t.table.as_str(), t.rows)).collect();
        // 99 is a child not listed (temporary): left out, as a scan leaves it out.
        assert_eq!(
            got,
            [
                ("p", 12),
                ("p1", 5),
                ("p2", 7),
                ("p21", 7),
                ("a", 1111),
                ("b", 1010),
                ("c", 1100),
                ("d", 1000),
                ("plain", 0)
            ]
        );
    }

    #[test]
    fn a_table_with_a_member_not_counted_is_left_to_count_star() {
        let catalog = Catalog::new(
            vec![
                rel(1, "p", 'p', true),
                rel(2, "local", 'r', true),
                rel(3, "remote", 'f', false),
                rel(4, "t", 'r', true),
            ],
            vec![(2, 1), (3, 1)],
        );
        let known = |own: &Counts| -> Vec<(String, bool)> {
            catalog.totals(own).into_iter().map(|(t, known)| (t.table, known)).collect()
        };
        let got = known(&own(&[("local", 3)]));
        assert_eq!(got, [("p".to_string(), false), ("local".to_string(), true), ("t".to_string(), false)]);
        assert_eq!(catalog.totals(&own(&[("local", 3)]))[1].0.rows, 3);
        // The output not read at all: every table.
        assert!(known(&Counts::new()).iter().all(|(_, k)| !k));
    }
}
