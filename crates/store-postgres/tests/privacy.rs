//! Personal text in PostgreSQL (`docs/privacy.md`): sealed at rest, so no `pg_dump` of the
//! database shows it; erased by destroying its keys, after which the dump holds neither the
//! text nor the keys; scores unchanged throughout.
//!
//! Skips, saying so, when `RAPPORT_PG_URL` is unset, and fails instead when `CI` is set;
//! needs `pg_dump` (PostgreSQL's client), and fails without it.

use rapport_core::{
    AccountId, AsOf, BackfillStore, CommitmentKey, ErasingStore, Event, ExpectedVersion, Ledger, Metadata, NewEvent,
    Profile, Store, SurveyKey, SurveyScore, TextState, Timestamp,
};
use rapport_health::{HealthModel, score_all};
use rapport_store_postgres::{PgOptions, PgStore};

const SECRETS: [&str; 4] = ["SECRET-TITLE-7f3a", "SECRET-COMMENT-19c2", "SECRET-ACTOR-5d1e", "SECRET-OWNER-88aa"];

fn t(days: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_735_689_600 + days * 86_400)
}

/// Events of `account` holding every secret: a title, a comment, an actor, an owner; and some
/// without text.
fn events(account: &str) -> Vec<NewEvent> {
    let a = AccountId::new(account).unwrap();
    let key = CommitmentKey::new("c-1").unwrap();
    let actor = Metadata::new().with_actor(SECRETS[2]).unwrap();
    let profile = Box::new(Profile { owner: Some(SECRETS[3].into()), tier: Some("gold".into()), ..Profile::default() });
    vec![
        NewEvent::new(a.clone(), t(0), Event::AccountProfiled { profile }),
        NewEvent::new(
            a.clone(),
            t(1),
            Event::CommitmentMade { commitment: key.clone(), title: SECRETS[0].into(), due: t(20), weight: 1.0 },
        )
        .with_meta(actor),
        NewEvent::new(a.clone(), t(2), Event::TouchpointHeld { channel: rapport_core::Channel::Call }),
        NewEvent::new(
            a.clone(),
            t(3),
            Event::SurveyAnswered {
                survey: SurveyKey::new("q1").unwrap(),
                score: SurveyScore::Nps(3),
                comment: Some(SECRETS[1].into()),
            },
        ),
        NewEvent::new(a, t(15), Event::CommitmentDelivered { commitment: key, accepted: true }),
    ]
}

/// `pg_dump` of the store's schema, as text.
fn dump(url: &str, schema: &str) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--dbname", url, "--schema", schema])
        .output()
        .expect("pg_dump runs (install PostgreSQL's client: apt-get install postgresql-client-15)");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("pg_dump writes UTF-8")
}

/// The keys in a dump's copy of `rapport_keys`, as the hex `pg_dump` writes bytea in (account,
/// hex).
fn dumped_keys(dump: &str, schema: &str) -> Vec<(String, String)> {
    let start = format!("COPY {schema}.rapport_keys ");
    let mut lines = dump.lines().skip_while(|l| !l.starts_with(&start)).skip(1);
    let mut keys = Vec::new();
    for line in lines.by_ref().take_while(|l| *l != "\\.") {
        let cols: Vec<&str> = line.split('\t').collect();
        let hex = cols[3].trim_start_matches("\\\\x");
        assert_eq!(hex.len(), 64, "a key of 32 bytes: {line}");
        keys.push((cols[1].to_owned(), hex.to_owned()));
    }
    keys
}

#[test]
fn no_dump_shows_the_text_and_after_erasure_none_shows_the_keys() {
    let Some(url) = rapport_core::testing::pg_url() else { return };
    let schema = format!("rapport_priv{}", std::process::id());
    let store = PgStore::connect_with(&url, PgOptions { schema: Some(schema.clone()), ..PgOptions::default() })
        .expect("connect");
    let (leaving, staying) = (events("leaving"), events("staying"));
    // One account through a plain append, the other through the bulk path (COPY).
    pollster::block_on(store.append(leaving.clone(), ExpectedVersion::Any)).unwrap();
    pollster::block_on(store.append_bulk(staying.clone())).unwrap();
    let ledger = Ledger::new(&store);
    let scores = || pollster::block_on(score_all(&ledger, &HealthModel::default(), AsOf::at(t(30)))).unwrap();
    let before = scores();

    let sealed = dump(&url, &schema);
    for secret in SECRETS {
        assert!(!sealed.contains(secret), "{secret} is sealed at rest");
    }
    let keys = dumped_keys(&sealed, &schema);
    assert_eq!(keys.len(), 2, "one key per account and month: {keys:?}");
    let read = pollster::block_on(store.read_all(rapport_core::Position(1), 100)).unwrap();
    assert!(read.iter().zip(leaving.iter().chain(&staying)).all(|(r, e)| r.same_content(e) && r.meta == e.meta));

    let erasure = pollster::block_on(store.erase(&AccountId::new("leaving").unwrap(), "request 42")).unwrap();
    assert_eq!(erasure.keys_destroyed, 1);
    assert_eq!(scores(), before, "scores unchanged");
    let erased = dump(&url, &schema);
    for secret in SECRETS {
        assert!(!erased.contains(secret), "{secret} stays out");
    }
    for (account, hex) in &keys {
        assert_eq!(erased.contains(hex.as_str()), account == "staying", "{account}'s key after the erasure");
    }
    assert!(erased.contains("request 42"), "the erasure is recorded");
    let read =
        pollster::block_on(store.read_stream(&AccountId::new("leaving").unwrap(), rapport_core::StreamVersion(1), 100))
            .unwrap();
    let texts: Vec<TextState> = read.iter().map(|e| e.text).collect();
    use TextState::{Erased, Present};
    assert_eq!(texts, [Erased, Erased, Present, Erased, Present]);

    // Re-imported, the erased lines are duplicates and nothing is stored again.
    let out = pollster::block_on(store.append_bulk(leaving)).unwrap();
    assert_eq!((out.appended.len(), out.duplicates.len()), (0, 5));
    assert_eq!(scores(), before);
    let again = dump(&url, &schema);
    assert!(SECRETS.iter().all(|s| !again.contains(s)));
    store.drop_schema().unwrap();
}
