//! Independent oracles for the webhook signatures: the providers' own Python packages (Stripe's
//! `stripe` and Plisio's official `plisio` SDK) check what Usher signs, and Usher checks what they
//! sign. Needs `python3` with both packages (`.ci/run` installs the pinned versions); without them
//! these tests fail, naming the pip command. They never skip.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use usher::integrations::payments::plisio::{CallbackError, sign_callback, verify_callback};
use usher::integrations::payments::stripe::{SignatureError, sign_header, verify_signature};

const PIP: &str = "python3 -m pip install 'stripe==16.1.0' 'plisio==1.0.11'";

/// Fails the test, naming the fix, unless python3 imports both packages.
fn require_python() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let output = Command::new("python3")
            .args(["-c", "import stripe, plisio"])
            .output()
            .map_err(|e| format!("python3 could not be started ({e})"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "python3 cannot import the oracle packages: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    });
    if let Err(problem) = checked {
        panic!("{problem}. The payment oracle tests need them: run `{PIP}`");
    }
}

/// Runs `script` with `input` as JSON on stdin and reads one JSON value from its stdout.
fn python(script: &str, input: &Value) -> Value {
    require_python();
    let preamble = "import json, sys, hmac, hashlib, time\nimport stripe, plisio\n\
                    data = json.load(sys.stdin)\n";
    let mut child = Command::new("python3")
        .args(["-c", &format!("{preamble}{script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 could not be started ({e}); run `{PIP}`"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write the oracle's input");
    let output = child.wait_with_output().expect("the oracle ran");
    assert!(
        output.status.success(),
        "the python oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the oracle printed JSON")
}

const STRIPE_SECRET: &str = "whsec_oracle_0123456789abcdef";

/// A realistic delivery: pretty-printed, with non-ASCII text (Stripe signs the UTF-8 bytes).
fn stripe_payload() -> String {
    serde_json::to_string_pretty(&json!({
        "id": "evt_1OracleTest", "object": "event", "type": "invoice.paid",
        "api_version": "2025-03-31.basil", "created": 1_750_000_000,
        "data": {"object": {"id": "in_1", "object": "invoice", "customer_name": "Zoë Café ☕",
            "amount_paid": 1000, "currency": "eur"}},
    }))
    .unwrap()
}

/// Each case through `stripe.WebhookSignature.verify_header(..., tolerance=300)`: "ok" or the
/// package's error message.
const STRIPE_VERIFY: &str = r#"
results = []
for case in data:
    try:
        stripe.WebhookSignature.verify_header(case["payload"], case["header"], case["secret"], tolerance=300)
        results.append("ok")
    except stripe.SignatureVerificationError as e:
        results.append(str(e))
print(json.dumps(results))
"#;

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[test]
fn stripe_headers_signed_by_usher_pass_the_official_stripe_package() {
    let payload = stripe_payload();
    let t = now().timestamp();
    let single = sign_header(payload.as_bytes(), STRIPE_SECRET, t);
    // While a secret is rolled Stripe sends one v1 per secret; either may be the one we know.
    let other = sign_header(payload.as_bytes(), "whsec_previous", t);
    let rotated = format!(
        "{other},v1={}",
        single.split_once(",v1=").expect("a v1 signature").1
    );
    let cases: Vec<Value> = [&single, &rotated]
        .iter()
        .map(|header| json!({"payload": payload, "header": header, "secret": STRIPE_SECRET}))
        .collect();
    assert_eq!(python(STRIPE_VERIFY, &json!(cases)), json!(["ok", "ok"]));
    for header in [&single, &rotated] {
        assert_eq!(
            verify_signature(payload.as_bytes(), header, STRIPE_SECRET, now()),
            Ok(())
        );
    }
}

#[test]
fn stripe_headers_computed_by_the_official_package_pass_usher() {
    let payload = stripe_payload();
    let t = now().timestamp();
    let script = r#"
t = data["t"]
signature = stripe.WebhookSignature._compute_signature(f"{t}.{data['payload']}", data["secret"])
print(json.dumps({"header": f"t={t},v1={signature}",
    "public": stripe.WebhookSignature.generate_signature_header(data["payload"], data["secret"], t)}))
"#;
    let made = python(
        script,
        &json!({"payload": payload, "secret": STRIPE_SECRET, "t": t}),
    );
    let header = made["header"].as_str().unwrap();
    assert_eq!(
        verify_signature(payload.as_bytes(), header, STRIPE_SECRET, now()),
        Ok(())
    );
    // stripe 16 also has a public test signer; it agrees with `_compute_signature` and with ours.
    assert_eq!(made["public"].as_str().unwrap(), header);
    assert_eq!(sign_header(payload.as_bytes(), STRIPE_SECRET, t), header);
}

#[test]
fn a_tampered_body_a_wrong_secret_and_a_stale_timestamp_are_refused_by_both() {
    let payload = stripe_payload();
    let now = now();
    let fresh = sign_header(payload.as_bytes(), STRIPE_SECRET, now.timestamp());
    let stale = sign_header(payload.as_bytes(), STRIPE_SECRET, now.timestamp() - 600);
    let tampered = payload.replace("1000", "9000");
    let cases = [
        (tampered.as_str(), fresh.as_str(), STRIPE_SECRET),
        (payload.as_str(), fresh.as_str(), "whsec_wrong_secret"),
        (payload.as_str(), stale.as_str(), STRIPE_SECRET),
    ];
    let input: Vec<Value> = cases
        .iter()
        .map(|(p, h, s)| json!({"payload": p, "header": h, "secret": s}))
        .collect();
    let theirs = python(STRIPE_VERIFY, &json!(input));
    let theirs: Vec<String> = serde_json::from_value(theirs).unwrap();
    let mismatch = "No signatures found matching the expected signature for payload";
    assert_eq!(theirs[0], mismatch);
    assert_eq!(theirs[1], mismatch);
    // The package appends the signed timestamp: "Timestamp outside the tolerance zone (…)".
    assert!(
        theirs[2].starts_with("Timestamp outside the tolerance zone"),
        "{}",
        theirs[2]
    );
    let ours: Vec<_> = cases
        .iter()
        .map(|(p, h, s)| verify_signature(p.as_bytes(), h, s, now))
        .collect();
    assert_eq!(ours[0], Err(SignatureError::NoMatch));
    assert_eq!(ours[1], Err(SignatureError::NoMatch));
    assert!(
        matches!(ours[2], Err(SignatureError::OutsideTolerance { skew_secs }) if skew_secs >= 600),
        "{:?}",
        ours[2]
    );
}

#[test]
fn a_far_future_timestamp_passes_the_stripe_package_but_not_usher() {
    let payload = stripe_payload();
    let now = now();
    let future = sign_header(payload.as_bytes(), STRIPE_SECRET, now.timestamp() + 3600);
    let input = json!([{"payload": payload, "header": future, "secret": STRIPE_SECRET}]);
    // stripe-python only rejects stale timestamps; Usher also refuses far-future ones (a
    // pre-signed replay or a broken clock), on purpose.
    assert_eq!(python(STRIPE_VERIFY, &input), json!(["ok"]));
    assert!(matches!(
        verify_signature(payload.as_bytes(), &future, STRIPE_SECRET, now),
        Err(SignatureError::OutsideTolerance { .. })
    ));
}

const PLISIO_SECRET: &str = "plisio_oracle_secret_key";

/// Each body through the official SDK's `PlisioClient(api_key).validate_callback(str)`.
const PLISIO_VALIDATE: &str = r#"
client = plisio.PlisioClient(api_key=data["secret"])
print(json.dumps([client.validate_callback(body) for body in data["bodies"]]))
"#;

fn callback_fields(order_name: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("txn_id", json!("6541e8a3f1a2b3c4d5e6f708")),
        ("ipn_type", json!("invoice")),
        ("merchant", json!("Usher test shop")),
        ("amount", json!("0.00012345")),
        ("currency", json!("BTC")),
        ("order_number", json!("ord-42")),
        ("order_name", json!(order_name)),
        ("confirmations", json!("3")),
        ("status", json!("completed")),
        ("source_currency", json!("USD")),
        ("source_amount", json!("10.00")),
        ("source_rate", json!(81004.12)),
        ("expire_utc", json!(1_750_003_600)),
        (
            "tx_urls",
            json!(["https://blockchair.com/bitcoin/transaction/abc"]),
        ),
        ("comment", json!("")),
    ]
}

fn body_text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("a UTF-8 body")
}

#[test]
fn plisio_callbacks_signed_by_usher_pass_the_official_sdk() {
    let bodies: Vec<String> = ["Plex access, 1 month", "Café ☕ 😀 — “quoted” \\ \"x\""]
        .iter()
        .map(|name| body_text(&sign_callback(&callback_fields(name), PLISIO_SECRET)))
        .collect();
    let verdicts = python(
        PLISIO_VALIDATE,
        &json!({"secret": PLISIO_SECRET, "bodies": bodies}),
    );
    assert_eq!(verdicts, json!([true, true]));
    for body in &bodies {
        assert_eq!(
            verify_callback(body.as_bytes(), PLISIO_SECRET)
                .unwrap()
                .order_number,
            "ord-42"
        );
    }
    let wrong_key = python(
        PLISIO_VALIDATE,
        &json!({"secret": "another-key", "bodies": bodies}),
    );
    assert_eq!(wrong_key, json!([false, false]));
}

/// Signs each case's fields (an ordered list of pairs) as the SDK verifies them (or, with
/// `"javascript": true`, with `ensure_ascii=False`, as `JSON.stringify` would), then writes the
/// body with Python's default `json.dumps` (spaces after separators, non-ASCII as sent).
const PLISIO_SIGN: &str = r#"
out = []
for case in data["cases"]:
    obj = dict(case["fields"])
    hashed = json.dumps(obj, separators=(',', ':'), ensure_ascii=not case["javascript"])
    obj["verify_hash"] = hmac.new(data["secret"].encode(), hashed.encode(), hashlib.sha1).hexdigest()
    out.append(json.dumps(obj, ensure_ascii=False))
print(json.dumps(out))
"#;

fn fields_as_pairs(fields: &[(&str, Value)]) -> Value {
    Value::Array(fields.iter().map(|(k, v)| json!([k, v])).collect())
}

#[test]
fn plisio_callbacks_hashed_the_sdks_way_pass_usher() {
    let ascii = callback_fields("Plex access, 1 month");
    let accented = callback_fields("Café ☕ 😀");
    let bodies = python(
        PLISIO_SIGN,
        &json!({"secret": PLISIO_SECRET, "cases": [
            {"fields": fields_as_pairs(&ascii), "javascript": false},
            {"fields": fields_as_pairs(&accented), "javascript": false},
        ]}),
    );
    let bodies: Vec<String> = serde_json::from_value(bodies).unwrap();
    assert!(
        bodies[1].contains("Café"),
        "the body carries raw UTF-8: {}",
        bodies[1]
    );
    // Sanity: the SDK itself accepts what its approach produced.
    assert_eq!(
        python(
            PLISIO_VALIDATE,
            &json!({"secret": PLISIO_SECRET, "bodies": bodies})
        ),
        json!([true, true])
    );
    for body in &bodies {
        let callback = verify_callback(body.as_bytes(), PLISIO_SECRET).unwrap();
        assert_eq!(callback.txn_id, "6541e8a3f1a2b3c4d5e6f708");
        assert_eq!(callback.source_amount_minor, Some(1000));
    }
    let tampered = bodies[0].replace("ord-42", "ord-43");
    assert_eq!(
        verify_callback(tampered.as_bytes(), PLISIO_SECRET),
        Err(CallbackError::HashMismatch)
    );
    assert_eq!(
        python(
            PLISIO_VALIDATE,
            &json!({"secret": PLISIO_SECRET, "bodies": [tampered]})
        ),
        json!([false])
    );
}

#[test]
fn a_non_ascii_callback_hashed_like_json_stringify_passes_usher_but_not_the_python_sdk() {
    let accented = callback_fields("Café ☕ 😀");
    let ascii = callback_fields("Plex access, 1 month");
    let bodies = python(
        PLISIO_SIGN,
        &json!({"secret": PLISIO_SECRET, "cases": [
            {"fields": fields_as_pairs(&accented), "javascript": true},
            {"fields": fields_as_pairs(&ascii), "javascript": true},
        ]}),
    );
    let bodies: Vec<String> = serde_json::from_value(bodies).unwrap();
    // The SDK escapes non-ASCII before hashing (ensure_ascii), so it cannot match a hash taken
    // over raw UTF-8; Usher accepts either serialisation. For ASCII-only bodies the two agree.
    assert_eq!(
        python(
            PLISIO_VALIDATE,
            &json!({"secret": PLISIO_SECRET, "bodies": bodies})
        ),
        json!([false, true])
    );
    for body in &bodies {
        assert!(
            verify_callback(body.as_bytes(), PLISIO_SECRET).is_ok(),
            "{body}"
        );
    }
}
