//! Query parameters fuzzed end to end through the actix service: random
//! keys, values, encodings, repeated keys, huge and negative numbers and
//! non-UTF-8 bytes. Every answer is 200 or 400, never a panic or a 500, and a
//! 400 is one line that names the parameter (or the malformed name).
//!
//! The parser itself is fuzzed with 12,000 cases in `serve::params`' unit
//! tests; this file sends 600 requests through the real service.

use actix_web::{test, App};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use webstack::actix::Webstack;

fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"=&-_.~%+".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("augment".to_owned()),
        Just("maxmem".to_owned()),
        Just("similarity".to_owned()),
        Just("format".to_owned()),
        Just("AUGMENT".to_owned()),
        Just("%61ugment".to_owned()),
        "[a-z]{0,8}",
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|b| encode(&b)),
    ];
    let value = prop_oneof![
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("99999999999999999999999999999".to_owned()),
        Just("1048575".to_owned()),
        Just("anyvalue".to_owned()),
        Just("exactflags".to_owned()),
        Just("json".to_owned()),
        Just("text".to_owned()),
        Just("%ff%fe".to_owned()),
        Just("%".to_owned()),
        "[0-9]{0,25}",
        proptest::collection::vec(any::<u8>(), 0..10).prop_map(|b| encode(&b)),
    ];
    proptest::collection::vec((key, value, any::<bool>()), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, with_eq)| if with_eq { format!("{k}={v}") } else { k })
            .collect::<Vec<_>>()
            .join("&")
    })
}

const NAMES: [&str; 4] = ["augment", "maxmem", "similarity", "format"];

#[actix_rt::test]
async fn fuzzed_queries_answer_200_or_a_400_naming_the_parameter() {
    let app = test::init_service(App::new().service(Webstack::new("/fuzz"))).await;
    let mut runner = TestRunner::new(Config::with_cases(600));
    let mut cases = Vec::new();
    for _ in 0..600 {
        cases.push(query().new_tree(&mut runner).unwrap().current());
    }
    let (mut ok, mut bad) = (0, 0);
    for query in cases {
        let req = test::TestRequest::get()
            .uri(&format!("/fuzz?{query}"))
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status().as_u16();
        let body = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
        match status {
            200 => ok += 1,
            400 => {
                bad += 1;
                let line = body.trim_end_matches('\n');
                assert!(!line.contains('\n'), "{query:?}: several lines: {body:?}");
                assert!(
                    NAMES.iter().any(|n| line.starts_with(n))
                        || line.starts_with("unknown parameter")
                        || line.starts_with("empty parameter")
                        || line.starts_with("malformed parameter"),
                    "{query:?}: 400 does not name the parameter: {line:?}"
                );
            }
            other => panic!("{query:?}: status {other}: {body}"),
        }
    }
    println!("600 fuzzed requests: {ok} answered 200, {bad} answered 400");
    assert!(ok > 0 && bad > 0, "the generator covers both outcomes");
}
