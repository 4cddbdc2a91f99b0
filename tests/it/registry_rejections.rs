//! Every PROTOCOL §6 refusal for the registry kinds: the right class, a path naming the
//! field, and a ledger that did not grow.

use dcledger::entry::Kind;
use dcledger::ingest::{self, Signatures};
use dcledger::ledger::AfterRefusal;
use dcledger::reject::RejectClass;
use serde_json::{Value, json};

use crate::support::{ORIGIN, Party, TestLedger, key, public_hex};

/// A ledger with an operator org ("op", key seed 3) and a revoked key (seed 4).
fn fixture() -> (TestLedger, Party, Party) {
    let mut t = TestLedger::new();
    let operator = Party::new(3);
    let revoked = Party::new(4);
    t.onboard("op", &["operator"], &operator);
    let grant = t.authority.sign(
        Kind::KeyGrant,
        json!({"org_id": "op", "public_key": revoked.public_hex()}),
    );
    let revoke = t.authority.sign(
        Kind::KeyRevoke,
        json!({"public_key": revoked.public_hex(), "reason": "laptop lost"}),
    );
    t.accept(vec![grant, revoke]);
    (t, operator, revoked)
}

fn org(id: &str) -> Value {
    json!({"org_id": id, "name": "Some Org", "roles": ["grantor"]})
}

struct Case {
    name: &'static str,
    build: fn(&mut TestLedger, &mut Party, &mut Party) -> Vec<Value>,
    class: RejectClass,
    /// Position of the refused envelope in the batch.
    position: usize,
    path: &'static str,
    message: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "leaf over 65,535 bytes (413 beats the schema error)",
            build: |t, _, _| {
                let mut body = org("big");
                body["name"] = json!("x".repeat(70_000));
                vec![t.authority.sign(Kind::OrgRegister, body)]
            },
            class: RejectClass::TooLarge,
            position: 0,
            path: "/entry",
            message: "65535",
        },
        Case {
            name: "missing required field",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::OrgRegister,
                    json!({"org_id": "a", "roles": ["lender"]}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body",
            message: "name",
        },
        Case {
            name: "unknown body field",
            build: |t, _, _| {
                let mut body = org("a");
                body["colour"] = json!("red");
                vec![t.authority.sign(Kind::OrgRegister, body)]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body",
            message: "colour",
        },
        Case {
            name: "identifier pattern",
            build: |t, _, _| vec![t.authority.sign(Kind::OrgRegister, org("Bad Id"))],
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/org_id",
            message: "",
        },
        Case {
            name: "unknown role",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::OrgRegister,
                    json!({"org_id": "a", "name": "A", "roles": ["miner"]}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/roles/0",
            message: "",
        },
        Case {
            name: "floating-point number",
            build: |t, _, _| {
                let mut env = t.authority.sign(Kind::OrgRegister, org("a"));
                env["entry"]["seq"] = json!(3.0);
                vec![env]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/seq",
            message: "integers",
        },
        Case {
            name: "key not lowercase hex",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": "AB".repeat(32)}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "",
        },
        Case {
            name: "unknown kind",
            build: |t, _, _| {
                let mut env = t.authority.sign(Kind::OrgRegister, org("a"));
                env["entry"]["kind"] = json!("org.delete");
                vec![env]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/kind",
            message: "",
        },
        Case {
            name: "ts more than 300 s ahead of the ledger clock",
            build: |t, _, _| {
                let seq = t.authority.next_seq;
                vec![t.authority.sign_with(
                    Kind::OrgRegister,
                    seq,
                    "2999-01-01T00:00:00Z",
                    org("a"),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/ts",
            message: "ahead",
        },
        Case {
            name: "envelope field missing",
            build: |t, _, _| {
                let mut env = t.authority.sign(Kind::OrgRegister, org("a"));
                env.as_object_mut().unwrap().remove("sig");
                vec![env]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/",
            message: "sig",
        },
        Case {
            name: "ts before 1970 (year 0000)",
            build: |t, _, _| {
                let seq = t.authority.next_seq;
                vec![t.authority.sign_with(
                    Kind::OrgRegister,
                    seq,
                    "0000-01-01T00:00:00Z",
                    org("a"),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/ts",
            message: "1970-01-01",
        },
        Case {
            name: "ts one second before 1970",
            build: |t, _, _| {
                let seq = t.authority.next_seq;
                vec![t.authority.sign_with(
                    Kind::OrgRegister,
                    seq,
                    "1969-12-31T23:59:59Z",
                    org("a"),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/ts",
            message: "1970-01-01",
        },
        Case {
            name: "control character in an organisation's name",
            build: |t, _, _| {
                let mut body = org("a");
                body["name"] = json!("Acme\u{0}Ltd");
                vec![t.authority.sign(Kind::OrgRegister, body)]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/name",
            message: "U+0000",
        },
        Case {
            name: "key.grant of the identity point",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": format!("01{}", "00".repeat(31))}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "small order",
        },
        Case {
            name: "key.grant of a point of order 8",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "small order",
        },
        Case {
            name: "key.grant of bytes that are no point of the curve",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": format!("02{}", "00".repeat(31))}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "not the encoding of a point",
        },
        Case {
            name: "key.grant of a non-canonical encoding (y = p + 3)",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": format!("f0{}7f", "ff".repeat(30))}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "canonical",
        },
        Case {
            name: "a key that can never sign outranks a wrong seq and an unknown organisation",
            build: |t, _, _| {
                let seq = t.authority.next_seq + 7;
                vec![t.authority.sign_with(
                    Kind::KeyGrant,
                    seq,
                    "2025-01-01T00:00:00Z",
                    json!({"org_id": "nobody", "public_key": format!("01{}", "00".repeat(31))}),
                )]
            },
            class: RejectClass::Invalid,
            position: 0,
            path: "/entry/body/public_key",
            message: "small order",
        },
        Case {
            name: "bad signature",
            build: |t, _, _| {
                let mut env = t.authority.sign(Kind::OrgRegister, org("a"));
                env["entry"]["body"]["name"] = json!("Tampered");
                vec![env]
            },
            class: RejectClass::Forbidden,
            position: 0,
            path: "/sig",
            message: "signature",
        },
        Case {
            name: "bad signature outranks a wrong seq",
            build: |t, _, _| {
                let mut env =
                    t.authority
                        .sign_with(Kind::OrgRegister, 99, "2025-01-01T00:00:00Z", org("a"));
                env["sig"] = json!("00".repeat(64));
                vec![env]
            },
            class: RejectClass::Forbidden,
            position: 0,
            path: "/sig",
            message: "",
        },
        Case {
            name: "unknown signer",
            build: |_, _, _| vec![Party::new(9).sign(Kind::OrgRegister, org("a"))],
            class: RejectClass::Forbidden,
            position: 0,
            path: "/entry/signer",
            message: "unknown signer",
        },
        Case {
            name: "revoked signer signing a registry kind",
            build: |_, _, revoked| vec![revoked.sign(Kind::OrgRegister, org("a"))],
            class: RejectClass::Forbidden,
            position: 0,
            path: "/entry/signer",
            message: "revoked",
        },
        Case {
            name: "kind outside the signer's roles",
            build: |_, operator, _| vec![operator.sign(Kind::OrgRegister, org("a"))],
            class: RejectClass::Forbidden,
            position: 0,
            path: "/entry/kind",
            message: "authority",
        },
        Case {
            name: "wrong seq (replay of an old seq)",
            build: |t, _, _| {
                vec![
                    t.authority
                        .sign_with(Kind::OrgRegister, 2, "2025-01-01T00:00:00Z", org("a")),
                ]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/seq",
            message: "expected seq",
        },
        Case {
            name: "wrong seq outranks an unknown reference",
            build: |t, _, _| {
                let seq = t.authority.next_seq + 1;
                vec![t.authority.sign_with(
                    Kind::KeyGrant,
                    seq,
                    "2025-01-01T00:00:00Z",
                    json!({"org_id": "nobody", "public_key": "11".repeat(32)}),
                )]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/seq",
            message: "",
        },
        Case {
            name: "key.grant to an unregistered organisation",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "nobody", "public_key": "11".repeat(32)}),
                )]
            },
            class: RejectClass::UnknownReference,
            position: 0,
            path: "/entry/body/org_id",
            message: "not registered",
        },
        Case {
            name: "org.register with an unregistered parent",
            build: |t, _, _| {
                let mut body = org("child");
                body["parent_org"] = json!("ghost");
                vec![t.authority.sign(Kind::OrgRegister, body)]
            },
            class: RejectClass::UnknownReference,
            position: 0,
            path: "/entry/body/parent_org",
            message: "",
        },
        Case {
            name: "key.revoke of an unknown key",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyRevoke,
                    json!({"public_key": "22".repeat(32), "reason": "x"}),
                )]
            },
            class: RejectClass::UnknownReference,
            position: 0,
            path: "/entry/body/public_key",
            message: "",
        },
        Case {
            name: "second registration of an organisation",
            build: |t, _, _| vec![t.authority.sign(Kind::OrgRegister, org("op"))],
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/body/org_id",
            message: "already registered",
        },
        Case {
            name: "the implicit authority organisation exists",
            build: |t, _, _| vec![t.authority.sign(Kind::OrgRegister, org("authority"))],
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/body/org_id",
            message: "already registered",
        },
        Case {
            name: "second grant of a live key",
            build: |t, operator, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": operator.public_hex()}),
                )]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/body/public_key",
            message: "granted once",
        },
        Case {
            name: "the ledger's checkpoint key is never an entry key",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": public_hex(&key(2))}),
                )]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/body/public_key",
            message: "checkpoint key",
        },
        Case {
            name: "an unknown organisation outranks granting the checkpoint key",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "nobody", "public_key": public_hex(&key(2))}),
                )]
            },
            class: RejectClass::UnknownReference,
            position: 0,
            path: "/entry/body/org_id",
            message: "not registered",
        },
        Case {
            name: "a revoked key is never granted again",
            build: |t, _, revoked| {
                vec![t.authority.sign(
                    Kind::KeyGrant,
                    json!({"org_id": "op", "public_key": revoked.public_hex()}),
                )]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/body/public_key",
            message: "since revoked",
        },
        Case {
            name: "a second genesis",
            build: |t, _, _| {
                vec![t.authority.sign(
                    Kind::LedgerGenesis,
                    json!({"origin": "x.example/y", "name": "again", "checkpoint_key": "33".repeat(32)}),
                )]
            },
            class: RejectClass::Conflict,
            position: 0,
            path: "/entry/kind",
            message: "genesis",
        },
        Case {
            name: "all or nothing: a good entry then a bad one",
            build: |t, _, _| {
                let good = t.authority.sign(Kind::OrgRegister, org("fine"));
                let bad = t.authority.sign(Kind::OrgRegister, org("fine"));
                vec![good, bad]
            },
            class: RejectClass::Conflict,
            position: 1,
            path: "/entry/body/org_id",
            message: "already registered",
        },
    ]
}

#[test]
fn every_registry_refusal_names_the_field_and_writes_nothing() {
    for case in cases() {
        let (mut t, mut operator, mut revoked) = fixture();
        let size = t.ledger.size();
        let checkpoint = t.ledger.checkpoint().to_string();
        let batch = (case.build)(&mut t, &mut operator, &mut revoked);
        let refusal = match t.ledger.append_batch(batch).expect("storage") {
            Ok(_) => panic!("{}: accepted", case.name),
            Err(r) => r,
        };
        assert_eq!(
            refusal.rejection.class, case.class,
            "{}: {}",
            case.name, refusal.rejection
        );
        assert_eq!(refusal.position, case.position, "{}", case.name);
        let text = refusal.rejection.to_string();
        assert!(
            refusal.rejection.errors.iter().any(|e| e.path == case.path),
            "{}: no error at {}: {text}",
            case.name,
            case.path
        );
        assert!(text.contains(case.message), "{}: {text}", case.name);
        assert_eq!(t.ledger.size(), size, "{}: ledger grew", case.name);
        assert_eq!(t.ledger.checkpoint(), checkpoint, "{}", case.name);
        // Nothing of the refused batch was counted: the authority's next seq is still the
        // one after genesis (1), onboarding (2, 3) and the grant and revoke (4, 5).
        let authority = t.authority.key.verifying_key().to_bytes();
        let signer = t.ledger.reader().signer(&authority).unwrap().unwrap();
        assert_eq!(signer.record.next_seq, 6, "{}", case.name);
    }
}

/// The log's key is never an entry key (PROTOCOL §6), the authority's included: a genesis
/// whose checkpoint key is its own signer's is refused, and no ledger is made.
#[test]
fn a_genesis_signed_with_the_checkpoint_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let same = key(1);
    let error = match dcledger::ledger::Ledger::init(&data, ORIGIN, "one key", &same, &same) {
        Ok(_) => panic!("a ledger whose authority signs its checkpoints"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("conflict") && error.contains("/entry/body/checkpoint_key"),
        "{error}"
    );
    let ledger = dcledger::ledger::Ledger::open(&data, same.clone()).expect("open");
    assert_eq!(ledger.size(), 0, "the refused genesis was written");
    // With a log key of its own, the same authority makes a ledger.
    let other = tempfile::tempdir().expect("tempdir");
    dcledger::ledger::Ledger::init(&other.path().join("data"), ORIGIN, "two", &same, &key(2))
        .expect("init");
}

/// PROTOCOL §2: an object that holds a key twice, anywhere in an envelope, is refused when
/// the NDJSON line is parsed (`dcledger append`): 400 at the object, naming the key and
/// the line, and nothing of its batch is written.
#[test]
fn a_repeated_key_in_an_ndjson_line_refuses_its_batch() {
    let (mut t, _, _) = fixture();
    let good = t
        .authority
        .sign(Kind::OrgRegister, org("first"))
        .to_string();
    let signed = t
        .authority
        .sign(Kind::OrgRegister, org("second"))
        .to_string();
    // The same key twice in the body, in the entry, and in the envelope itself; JSON text
    // only, since a `Value` cannot hold a key twice.
    let cases = [
        (
            signed.replacen(
                r#""name":"Some Org""#,
                r#""name":"Some Org","name":"Other Org""#,
                1,
            ),
            "/entry/body",
            "name",
        ),
        (
            signed.replacen(
                r#""kind":"org.register""#,
                r#""kind":"org.register","kind":"org.register""#,
                1,
            ),
            "/entry",
            "kind",
        ),
        (
            signed.replacen(r#","sig":"#, r#","sig":"00","sig":"#, 1),
            "/",
            "sig",
        ),
    ];
    for (line, path, key) in cases {
        assert_ne!(line, signed, "the test did not repeat {key}");
        let size = t.ledger.size();
        let input = std::io::Cursor::new(format!("{good}\n{line}\n"));
        let summary = dcledger::bulk::append_ndjson(&mut t.ledger, input, |_| {}).expect("storage");
        let refused = summary.refused.expect("a repeated key was accepted");
        assert_eq!(refused.line, 2);
        assert_eq!(refused.rejection.class, RejectClass::Invalid);
        assert_eq!(
            refused.rejection.errors[0].path, path,
            "{}",
            refused.rejection
        );
        assert!(
            refused.rejection.errors[0]
                .message
                .contains(&format!("{key:?} appears twice")),
            "{}",
            refused.rejection
        );
        assert_eq!(summary.accepted, 0);
        assert_eq!(t.ledger.size(), size, "{key}: the batch was written");
    }
}

#[test]
fn wrong_seq_says_which_is_expected() {
    let (mut t, _, _) = fixture();
    let env = t
        .authority
        .sign_with(Kind::OrgRegister, 42, "2025-01-01T00:00:00Z", org("a"));
    let refusal = t.ledger.append_batch(vec![env]).unwrap().unwrap_err();
    assert_eq!(refusal.rejection.expected_seq, Some(t.authority.next_seq));
}

#[test]
fn entries_see_earlier_entries_of_their_batch() {
    let mut t = TestLedger::new();
    let grantor = Party::new(5);
    let reg = t.authority.sign(Kind::OrgRegister, org("g"));
    let grant = t.authority.sign(
        Kind::KeyGrant,
        json!({"org_id": "g", "public_key": grantor.public_hex()}),
    );
    let revoke = t.authority.sign(
        Kind::KeyRevoke,
        json!({"public_key": grantor.public_hex(), "reason": "rotated"}),
    );
    t.accept(vec![reg, grant, revoke]);
    let signer = t
        .ledger
        .reader()
        .signer(&grantor.key.verifying_key().to_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(signer.record.org_id, "g");
    assert_eq!(signer.record.revoked_at, Some(3));
}

/// Three batches of one envelope: `a` registered, `a` again at the next seq (a conflict),
/// and `b` at that same seq (admitted if judged after the conflict left no trace).
fn organisation_a_again_and_b(t: &mut TestLedger) -> [Value; 3] {
    let a = t.authority.sign(Kind::OrgRegister, org("a"));
    let dup = t
        .authority
        .sign_with(Kind::OrgRegister, 3, "2025-01-01T00:00:00Z", org("a"));
    let b = t
        .authority
        .sign_with(Kind::OrgRegister, 3, "2025-01-01T00:00:00Z", org("b"));
    [a, dup, b]
}

#[test]
fn refused_batch_in_a_group_leaves_the_others_intact() {
    let mut t = TestLedger::new();
    let [a, dup, b] = organisation_a_again_and_b(&mut t);
    let (outcomes, _) = t
        .ledger
        .append_groups(vec![vec![a], vec![dup], vec![b]])
        .unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap()[0].index, 1);
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().rejection.class,
        RejectClass::Conflict
    );
    assert_eq!(outcomes[2].as_ref().unwrap()[0].index, 2);
    assert_eq!(t.ledger.size(), 3);
    t.ledger.verify().unwrap();
}

#[test]
fn a_group_told_to_stop_judges_nothing_after_its_first_refused_batch() {
    let mut t = TestLedger::new();
    let [a, dup, b] = organisation_a_again_and_b(&mut t);
    let now = t.ledger.clock();
    let origin = t.ledger.origin().map(str::to_string);
    let signatures = Signatures::Verify {
        origin: origin.as_deref(),
    };
    let mut prepared = ingest::prepare_all(vec![(a, now), (dup, now), (b, now)], signatures);
    let groups = vec![
        vec![prepared.remove(0)],
        vec![prepared.remove(0)],
        vec![prepared.remove(0)],
    ];
    let (outcomes, _) = t
        .ledger
        .append_prepared(groups, AfterRefusal::Stop)
        .unwrap();
    // The first batch is written, the second refused, the third left out unjudged: `b`
    // would have been admitted at index 2 had the group gone on.
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0].as_ref().unwrap()[0].index, 1);
    assert_eq!(
        outcomes[1].as_ref().unwrap_err().rejection.class,
        RejectClass::Conflict
    );
    assert_eq!(t.ledger.size(), 2);
    t.ledger.verify().unwrap();
}

/// A batch and a half of NDJSON lines the authority signs, each registering an
/// organisation: one whole batch, and half of the next, which what follows them decides.
fn batch_and_a_half(t: &mut TestLedger) -> Vec<u8> {
    let batch = dcledger::limits::MAX_BATCH_ENTRIES;
    let mut input = Vec::new();
    for k in 0..batch + batch / 2 {
        let line = t
            .authority
            .sign(Kind::OrgRegister, org(&format!("org-{k}")));
        input.extend_from_slice(line.to_string().as_bytes());
        input.push(b'\n');
    }
    input
}

/// An input that cannot be read further (here a reader that fails after a batch and a
/// half of lines and the start of one more) stops a bulk append with the read error: the
/// whole batches before it are committed, in order, and nothing of the batch it cuts
/// short, nor after it.
#[test]
fn a_read_error_keeps_the_whole_batches_before_it() {
    /// A source whose every read fails, as a disk or a pipe can.
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the input went away"))
        }
    }
    let mut t = TestLedger::new();
    let size = t.ledger.size();
    let batch = dcledger::limits::MAX_BATCH_ENTRIES;
    let mut input = batch_and_a_half(&mut t);
    let after = t.authority.sign(Kind::OrgRegister, org("after"));
    input.extend_from_slice(&after.to_string().as_bytes()[..20]);
    let reader =
        std::io::BufReader::new(std::io::Read::chain(std::io::Cursor::new(input), Failing));
    let outcome = dcledger::bulk::append_ndjson(&mut t.ledger, reader, |_| {});
    assert!(
        matches!(outcome, Err(dcledger::bulk::BulkError::Read(_))),
        "{outcome:?}"
    );
    assert_eq!(t.ledger.size(), size + batch as u64);
}

/// A line that is not UTF-8 is refused as a malformed line is, naming its line: the
/// whole batches before it are committed, nothing of its own batch nor after it.
#[test]
fn a_line_that_is_not_utf8_refuses_its_batch() {
    let mut t = TestLedger::new();
    let size = t.ledger.size();
    let batch = dcledger::limits::MAX_BATCH_ENTRIES;
    let mut input = batch_and_a_half(&mut t);
    input.extend_from_slice(b"\xff\xfe not UTF-8\n");
    let after = t.authority.sign(Kind::OrgRegister, org("after"));
    input.extend_from_slice(after.to_string().as_bytes());
    let summary = dcledger::bulk::append_ndjson(&mut t.ledger, std::io::Cursor::new(input), |_| {})
        .expect("a refusal, not an error");
    let refused = summary.refused.expect("the line is refused");
    assert_eq!(refused.line, (batch + batch / 2 + 1) as u64);
    assert_eq!(refused.rejection.class, RejectClass::Invalid);
    assert_eq!(t.ledger.size(), size + batch as u64);
}

/// A bulk append of many small batches (prepared a batch a core and one more ahead, as
/// they are small) commits every batch before a refused one, in input order (each
/// entry's seq follows the one before, so a batch out of order would be refused), and
/// names the refused line.
#[test]
fn small_batches_prepared_ahead_commit_in_order_up_to_a_refused_line() {
    let mut t = TestLedger::new();
    let size = t.ledger.size();
    let batch = dcledger::limits::MAX_BATCH_ENTRIES;
    let refused_line = 3 * batch + batch / 5;
    let mut input = String::new();
    for k in 1..=4 * batch {
        let line = t
            .authority
            .sign(Kind::OrgRegister, org(&format!("org-{k}")))
            .to_string();
        if k == refused_line {
            // Signed for another name: a bad signature.
            input.push_str(&line.replacen(&format!("org-{k}\""), "org-x\"", 1));
        } else {
            input.push_str(&line);
        }
        input.push('\n');
    }
    let summary = dcledger::bulk::append_ndjson(&mut t.ledger, std::io::Cursor::new(input), |_| {})
        .expect("storage");
    let refused = summary.refused.expect("the tampered line was accepted");
    assert_eq!(refused.line, refused_line as u64);
    assert_eq!(refused.rejection.class, RejectClass::Forbidden);
    assert_eq!(summary.accepted, 3 * batch as u64);
    assert_eq!(t.ledger.size(), size + 3 * batch as u64);
    t.ledger.verify().unwrap();
}
