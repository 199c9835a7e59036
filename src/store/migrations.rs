//! The schema of each backend, embedded: the files of `migrations/sqlite/`
//! and `migrations/postgres/`, in order. Each backend applies its own list
//! on open (`sqlite::migrate`, sqlx's migrator on PostgreSQL). Versions
//! grow but may skip a number. A test
//! checks both lists against their folders, so a file added there and
//! forgotten here fails the build's tests.

/// A schema version and the SQL that reaches it from the one before.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(super) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "merkle log",
        sql: include_str!("../../migrations/sqlite/0002_merkle_log.sql"),
    },
    Migration {
        version: 3,
        name: "log subjects",
        sql: include_str!("../../migrations/sqlite/0003_log_subjects.sql"),
    },
    Migration {
        version: 4,
        name: "request keys",
        sql: include_str!("../../migrations/sqlite/0004_request_keys.sql"),
    },
    Migration {
        version: 5,
        name: "subject ids",
        sql: include_str!("../../migrations/sqlite/0005_subject_ids.sql"),
    },
    Migration {
        version: 6,
        name: "statistics releases",
        sql: include_str!("../../migrations/sqlite/0006_statistics_releases.sql"),
    },
    Migration {
        version: 7,
        name: "log tiles",
        sql: include_str!("../../migrations/sqlite/0007_log_tiles.sql"),
    },
    Migration {
        version: 9,
        name: "emergency alerts",
        sql: include_str!("../../migrations/sqlite/0009_emergency_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "federation",
        sql: include_str!("../../migrations/sqlite/0010_federation.sql"),
    },
    Migration {
        version: 11,
        name: "case keys",
        sql: include_str!("../../migrations/sqlite/0011_case_keys.sql"),
    },
    Migration {
        version: 12,
        name: "federation directory",
        sql: include_str!("../../migrations/sqlite/0012_federation_directory.sql"),
    },
    Migration {
        version: 16,
        name: "witnessing",
        sql: include_str!("../../migrations/sqlite/0016_witnessing.sql"),
    },
    Migration {
        version: 18,
        name: "referred consents, witness alarm acknowledgements",
        sql: include_str!("../../migrations/sqlite/0018_referred_consents_alarm_acks.sql"),
    },
    Migration {
        version: 21,
        name: "node steps",
        sql: include_str!("../../migrations/sqlite/0021_node_steps.sql"),
    },
    Migration {
        version: 22,
        name: "log index by case",
        sql: include_str!("../../migrations/sqlite/0022_log_index_case.sql"),
    },
    Migration {
        version: 23,
        name: "referred subjects",
        sql: include_str!("../../migrations/sqlite/0023_referred_subjects.sql"),
    },
    Migration {
        version: 24,
        name: "referred pseudonyms",
        sql: include_str!("../../migrations/sqlite/0024_referred_pseudonyms.sql"),
    },
    Migration {
        version: 27,
        name: "referral claims",
        sql: include_str!("../../migrations/sqlite/0027_referral_claims.sql"),
    },
];

pub(super) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "merkle log",
        sql: include_str!("../../migrations/postgres/0002_merkle_log.sql"),
    },
    Migration {
        version: 3,
        name: "log subjects",
        sql: include_str!("../../migrations/postgres/0003_log_subjects.sql"),
    },
    Migration {
        version: 4,
        name: "request keys",
        sql: include_str!("../../migrations/postgres/0004_request_keys.sql"),
    },
    Migration {
        version: 5,
        name: "subject ids",
        sql: include_str!("../../migrations/postgres/0005_subject_ids.sql"),
    },
    Migration {
        version: 6,
        name: "statistics releases",
        sql: include_str!("../../migrations/postgres/0006_statistics_releases.sql"),
    },
    Migration {
        version: 7,
        name: "log tiles",
        sql: include_str!("../../migrations/postgres/0007_log_tiles.sql"),
    },
    Migration {
        version: 9,
        name: "emergency alerts",
        sql: include_str!("../../migrations/postgres/0009_emergency_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "federation",
        sql: include_str!("../../migrations/postgres/0010_federation.sql"),
    },
    Migration {
        version: 11,
        name: "case keys",
        sql: include_str!("../../migrations/postgres/0011_case_keys.sql"),
    },
    Migration {
        version: 12,
        name: "federation directory",
        sql: include_str!("../../migrations/postgres/0012_federation_directory.sql"),
    },
    Migration {
        version: 16,
        name: "witnessing",
        sql: include_str!("../../migrations/postgres/0016_witnessing.sql"),
    },
    Migration {
        version: 18,
        name: "referred consents, witness alarm acknowledgements",
        sql: include_str!("../../migrations/postgres/0018_referred_consents_alarm_acks.sql"),
    },
    Migration {
        version: 21,
        name: "node steps",
        sql: include_str!("../../migrations/postgres/0021_node_steps.sql"),
    },
    Migration {
        version: 22,
        name: "log index by case",
        sql: include_str!("../../migrations/postgres/0022_log_index_case.sql"),
    },
    Migration {
        version: 23,
        name: "referred subjects",
        sql: include_str!("../../migrations/postgres/0023_referred_subjects.sql"),
    },
    Migration {
        version: 24,
        name: "referred pseudonyms",
        sql: include_str!("../../migrations/postgres/0024_referred_pseudonyms.sql"),
    },
    Migration {
        version: 27,
        name: "referral claims",
        sql: include_str!("../../migrations/postgres/0027_referral_claims.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(folder: &str, list: &[Migration]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        files.sort();
        assert_eq!(files.len(), list.len(), "{folder}: {files:?}");
        let mut before = 0;
        for ((name, sql), m) in files.iter().zip(list) {
            // Versions grow; a number may be skipped (one kept for a change
            // made beside this one), never reused or reordered.
            assert!(m.version > before, "{folder}: versions grow");
            before = m.version;
            assert!(
                name.starts_with(&format!("{:04}_", m.version)),
                "{folder}/{name} is migration {}",
                m.version
            );
            assert_eq!(sql, m.sql, "{folder}/{name}");
        }
    }

    #[test]
    fn every_file_of_each_folder_is_embedded_in_order() {
        check("migrations/sqlite", SQLITE);
        check("migrations/postgres", POSTGRES);
    }
}
