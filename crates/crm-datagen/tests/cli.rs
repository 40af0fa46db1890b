//! The `crm-datagen` binary: generating again from a data set's `params.json`.

use std::path::Path;
use std::process::Command;

fn datagen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crm-datagen"))
        .args(args)
        .output()
        .expect("crm-datagen runs")
}

fn generate(args: &[&str], out: &Path) {
    let mut all = vec!["generate", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = datagen(&all);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn manifest(dir: &Path) -> crm_datagen::file::Manifest {
    crm_datagen::file::manifest(dir).unwrap()
}

#[test]
fn a_data_set_is_generated_again_from_its_params_json_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    generate(&["--customers", "60", "--seed", "5", "--days", "120"], &a);
    let params = a.join("params.json");
    generate(&["--params", params.to_str().unwrap()], &b);
    for f in ["commands.pb", "params.json", "truth.jsonl"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    // An edited shape: no customers from leads, another seed from the flag.
    let mut p = manifest(&a).params;
    p.from_leads = 0.0;
    let edited = tmp.path().join("edited.json");
    std::fs::write(&edited, serde_json::to_string(&p).unwrap()).unwrap();
    generate(&["--params", edited.to_str().unwrap(), "--seed", "6"], &c);
    let m = manifest(&c);
    assert_eq!(
        (m.params.seed, m.params.customers, m.params.days),
        (6, 60, 120)
    );
    assert!(m.params.from_leads.abs() < f64::EPSILON);
    assert!(!m.summary.by_command.contains_key("ConvertLead"));
    assert!(manifest(&a).summary.by_command.contains_key("ConvertLead"));
}

#[test]
fn a_params_file_that_is_not_parameters_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"customers": "many"}"#).unwrap();
    let out = tmp.path().join("out");
    let run = datagen(&[
        "generate",
        "--params",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("bad.json") && err.contains("neither a data set's params.json"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
