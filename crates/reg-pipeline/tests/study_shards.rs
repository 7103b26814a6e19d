//! A small study run as three shard processes, as a Slurm job array would start them, with one
//! shard killed and started again, then merged: the merged report must equal a single-process
//! run of the same study, apart from timings.
//!
//! The shard processes are this test binary itself, started with `--ignored --exact
//! shard_worker` and the Slurm variables set (`shard_worker` does nothing without them).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::SeedableRng;
use reg_pipeline::data::Dataset;
use reg_pipeline::experiments;
use reg_pipeline::random::{Generator, standard_normal, uniform};
use reg_pipeline::study::{self, Report, RunResult, Shard, Study, StudyError};
use reg_pipeline::{ModelConfig, PipelineError, TrainConfig};

const SIDE: usize = 6;
const CLASSES: usize = 4;
/// Set in a worker process: the results folder.
const DIR_VAR: &str = "REG_STUDY_TEST_DIR";
/// Set in a worker process that must stop (and wait to be killed) after its first new run.
const HANG_VAR: &str = "REG_STUDY_TEST_HANG";
const HANGING: &str = "worker: first run written, hanging";

/// Four noisy prototypes of 6×6 pixels.
fn data(n: usize, rng: &mut Generator, prototypes: &[Vec<f64>]) -> Dataset {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let class = i % CLASSES;
        for &p in &prototypes[class] {
            let v = (p + 0.3 * standard_normal(rng)).clamp(0.0, 1.0);
            images.push((v * 255.0).round() as u8);
        }
        labels.push(class as u8);
    }
    Dataset::new(images, labels, SIDE, SIDE).expect("consistent buffers")
}

fn splits() -> (Dataset, Dataset, Dataset) {
    let mut rng = Generator::seed_from_u64(7);
    let prototypes: Vec<Vec<f64>> = (0..CLASSES)
        .map(|_| (0..SIDE * SIDE).map(|_| uniform(&mut rng)).collect())
        .collect();
    let train = data(64, &mut rng, &prototypes);
    let validation = data(32, &mut rng, &prototypes);
    let test = data(32, &mut rng, &prototypes);
    (train, validation, test)
}

/// The three overfitting variants × 3 seeds, 3 epochs each, with small hidden layers: 9 runs.
fn small_study() -> Study {
    Study::over_seeds(
        "shard test",
        "synthetic 6×6",
        Some("regularized"),
        &[0, 1, 2],
        |seed| {
            experiments::overfitting_configs(SIDE * SIDE, 3, seed)
                .into_iter()
                .map(|(name, mut config)| {
                    let name = name.split(' ').next().unwrap_or(name);
                    let ModelConfig::Mlp(mlp) = &mut config.model else {
                        unreachable!("the overfitting study trains MLPs")
                    };
                    let last = mlp.sizes.len() - 1;
                    mlp.sizes[last] = CLASSES;
                    for width in &mut mlp.sizes[1..last] {
                        *width = (*width).min(16);
                    }
                    config.warmup = config.warmup.min(1);
                    (name, config)
                })
                .collect()
        },
    )
}

fn execute(shard: Shard, jobs: usize, dir: Option<&Path>, hang: bool) -> study::Outcome {
    let on_result = |result: &RunResult, skipped: bool| {
        println!("worker: run {} skipped={skipped}", result.index);
        if hang && !skipped {
            println!("{HANGING}");
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
    };
    try_execute(shard, jobs, dir, &on_result).expect("study runs")
}

/// `small_study` over `splits`, shard `shard` with `jobs` at once, results in `dir`.
fn try_execute(
    shard: Shard,
    jobs: usize,
    dir: Option<&Path>,
    on_result: &(dyn Fn(&RunResult, bool) + Sync),
) -> Result<study::Outcome, StudyError> {
    let (train, validation, test) = splits();
    let work = |run: &study::StudyRun| {
        experiments::run(
            &run.variant,
            run.config.clone(),
            &train,
            &validation,
            &test,
            &mut (),
        )
    };
    study::execute(&small_study(), shard, jobs, None, dir, &work, on_result)
}

/// The shard process: does nothing unless started by `sharded_study_merges_to_the_single_process_report`.
#[test]
#[ignore = "started as a subprocess by sharded_study_merges_to_the_single_process_report"]
fn shard_worker() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let shard = Shard::resolve(None, None, |k| std::env::var(k).ok()).expect("Slurm variables");
    let outcome = execute(
        shard,
        1,
        Some(Path::new(&dir)),
        std::env::var(HANG_VAR).is_ok(),
    );
    println!(
        "worker: shard {shard} ran {} skipped {}",
        outcome.ran, outcome.skipped
    );
}

fn worker(dir: &Path, task: usize, hang: bool) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "--ignored",
            "--exact",
            "shard_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .env("SLURM_ARRAY_TASK_ID", task.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        // Even when the tests themselves run inside a Slurm array.
        .env_remove("SLURM_ARRAY_TASK_MIN")
        .env_remove("SLURM_ARRAY_TASK_STEP")
        .env_remove("JOB_COMPLETION_INDEX")
        .stdout(Stdio::piped());
    if hang {
        command.env(HANG_VAR, "1");
    } else {
        command.env_remove(HANG_VAR);
    }
    command
}

/// Zeroes every wall-clock measurement, the only thing two runs of a study may differ in.
fn without_timings(mut results: Vec<RunResult>) -> Vec<RunResult> {
    for r in &mut results {
        r.seconds = 0.0;
        r.threads = 0;
        r.checksum.clear();
        r.metrics.median_epoch_seconds = 0.0;
        r.metrics.test_eval_seconds = 0.0;
        r.train_eval.seconds = 0.0;
        for e in &mut r.metrics.epochs {
            e.seconds = 0.0;
            e.eval_seconds = 0.0;
        }
    }
    results
}

#[test]
fn sharded_study_merges_to_the_single_process_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let mut shards = [0, 2].map(|task| worker(dir, task, false).spawn().expect("starts"));

    // Shard 1 hangs after its first run (of three) and is killed there.
    let mut hanging = worker(dir, 1, true).spawn().expect("starts");
    let stdout = hanging.stdout.take().expect("piped");
    let reached = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == HANGING);
    assert!(reached, "shard 1 reached its first result");
    hanging.kill().expect("killed");
    hanging.wait().expect("reaped");
    assert!(
        study::result_path(dir, 1).exists(),
        "shard 1's first run is on disk"
    );
    assert!(
        !study::result_path(dir, 4).exists(),
        "shard 1's second run is not"
    );

    for shard in &mut shards {
        assert!(shard.wait().expect("runs").success());
    }
    match study::merge(dir) {
        Err(StudyError::MissingRuns { missing, total, .. }) => {
            assert_eq!((missing, total), (vec![4, 7], 9));
        }
        other => panic!("merging before the restart must name runs 4 and 7: {other:?}"),
    }

    let restarted = worker(dir, 1, false).output().expect("runs");
    assert!(restarted.status.success());
    let said = String::from_utf8_lossy(&restarted.stdout);
    assert!(said.contains("worker: shard 1/3 ran 2 skipped 1"), "{said}");

    let merged = study::merge(dir).expect("every run is there");
    let single = execute(Shard::WHOLE, 2, None, false);
    assert!(single.complete);
    assert_eq!(
        Report::new(&merged).markdown(false),
        Report::new(&single.results).markdown(false)
    );
    assert_eq!(without_timings(merged), without_timings(single.results));
}

#[test]
fn merge_refuses_results_of_another_study_definition() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let outcome = execute(Shard::new(0, 9).expect("valid"), 1, Some(dir), false);
    assert_eq!(outcome.ran, 1);
    // Run 1 of a study with other settings lands in the same folder.
    let mut other = small_study();
    other.push("extra", 0, other.runs()[0].config.clone());
    let mut foreign = outcome.results[0].clone();
    foreign.index = 1;
    foreign.definition = other.definition_hash();
    let json = foreign.file_bytes().expect("serializes");
    std::fs::write(study::result_path(dir, 1), json).expect("written");
    assert!(matches!(
        study::merge(dir),
        Err(StudyError::MixedDefinitions { .. })
    ));

    // A shard restarted on that folder refuses to treat the foreign file as finished.
    let result = try_execute(Shard::new(1, 9).expect("valid"), 1, Some(dir), &|_, _| {});
    assert!(matches!(result, Err(StudyError::MixedDefinitions { .. })));
}

#[test]
fn merge_of_an_empty_folder_and_a_shard_without_folder_fail_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::NoResults { .. })
    ));
    let result = try_execute(Shard::new(0, 3).expect("valid"), 1, None, &|_, _| {});
    assert!(matches!(
        result,
        Err(StudyError::ResultsFolderRequired { .. })
    ));
}

#[test]
fn band_chart_has_a_band_and_a_name_per_variant() {
    let results = execute(Shard::WHOLE, 1, None, false).results;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bands.svg");
    study::write_band_chart(&path, "small study", &results).expect("chart written");
    let svg = std::fs::read_to_string(&path).expect("readable");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    // One band per variant in each of the two panels (markers are opaque; bands are light).
    let bands = doc
        .descendants()
        .filter(|n| n.has_tag_name("polygon") && n.attribute("opacity") == Some("0.18"))
        .count();
    assert_eq!(bands, 2 * 3, "{svg}");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    // Legend entries wrap at spaces: look for the words in order.
    let all = texts.join(" ");
    for name in [
        "underfit",
        "overfit",
        "regularized",
        "small study",
        "95 % CI over 3 seeds",
    ] {
        assert!(all.contains(name), "`{name}` in {texts:?}");
    }
}

/// A finished single-shard folder of the small study: the 9 run files.
fn finished_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let outcome = execute(Shard::new(0, 1).expect("valid"), 2, Some(dir.path()), false);
    assert_eq!(outcome.ran, 9);
    dir
}

/// Rewrites run `index`'s file in `dir` after `change`, resealing its checksum when `reseal`
/// (as someone who knows the format would) or keeping the old one (a hand edit).
fn tamper(dir: &Path, index: usize, reseal: bool, change: impl Fn(&mut serde_json::Value)) {
    let path = study::result_path(dir, index);
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
    change(&mut json);
    let bytes = if reseal {
        let result: RunResult = serde_json::from_value(json).expect("still a result");
        result.file_bytes().expect("serializes")
    } else {
        serde_json::to_vec_pretty(&json).expect("serializes")
    };
    std::fs::write(&path, bytes).expect("written");
}

#[test]
fn every_run_file_records_its_thread_count() {
    let dir = finished_folder();
    let merged = study::merge(dir.path()).expect("complete");
    // 2 jobs on this machine's cores: at least 1 thread each, the same for every run.
    assert!(
        merged
            .iter()
            .all(|r| r.threads >= 1 && r.threads == merged[0].threads)
    );
    let table = Report::new(&merged).markdown(true);
    assert!(table.contains("Threads per run: "), "{table}");
}

#[test]
fn a_hand_edited_result_is_refused_by_its_checksum() {
    let dir = finished_folder();
    tamper(dir.path(), 3, false, |j| {
        j["metrics"]["test_acc"] = (-5.0).into()
    });
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::CorruptResult { .. })
    ));
}

#[test]
fn implausible_values_are_refused_even_with_a_valid_checksum() {
    for (field, value) in [("test_acc", 1e308), ("test_acc", -5.0), ("test_loss", -1.0)] {
        let dir = finished_folder();
        tamper(dir.path(), 2, true, |j| j["metrics"][field] = value.into());
        assert!(
            matches!(
                study::merge(dir.path()),
                Err(StudyError::CorruptResult { .. })
            ),
            "{field} = {value}"
        );
    }
}

#[test]
fn a_renamed_variant_or_changed_total_is_refused() {
    let dir = finished_folder();
    tamper(dir.path(), 4, true, |j| j["variant"] = "renamed".into());
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::CorruptResult { .. })
    ));
    let dir = finished_folder();
    tamper(dir.path(), 4, true, |j| j["runs_total"] = 10.into());
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::MixedDefinitions { .. })
    ));
}

#[test]
fn a_huge_runs_total_is_refused_without_allocating() {
    let dir = tempfile::tempdir().expect("temp dir");
    execute(Shard::new(0, 9).expect("valid"), 1, Some(dir.path()), false);
    tamper(dir.path(), 0, true, |j| {
        j["runs_total"] = 1_000_000_000_000_u64.into()
    });
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::CorruptResult { .. })
    ));
}

#[test]
fn a_fifo_named_as_a_result_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = study::result_path(dir.path(), 0);
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::NotAFile { .. })
    ));
    // A shard whose run 0 is there as a FIFO refuses too, instead of hanging.
    let result = try_execute(
        Shard::new(0, 9).expect("valid"),
        1,
        Some(dir.path()),
        &|_, _| {},
    );
    assert!(matches!(result, Err(StudyError::NotAFile { .. })));
}

#[test]
fn a_grid_file_that_is_a_device_is_refused() {
    assert!(matches!(
        study::SweepGrid::load(Path::new("/dev/zero")),
        Err(StudyError::NotAFile { .. })
    ));
}

#[test]
fn a_copy_of_a_result_file_is_named_as_a_stray_file() {
    let dir = finished_folder();
    std::fs::copy(
        study::result_path(dir.path(), 1),
        dir.path().join("run-00001 (copy).json"),
    )
    .expect("copied");
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::StrayFile { .. })
    ));
}

#[test]
fn seeds_are_bounded_and_never_wrap() {
    assert!(matches!(
        study::seed_range(0, usize::MAX, 7),
        Err(StudyError::Pipeline(PipelineError::InvalidSetting {
            name: "seeds",
            ..
        }))
    ));
    assert!(matches!(
        study::seed_range(0, 10_000_000_000, 3),
        Err(StudyError::Pipeline(PipelineError::InvalidSetting {
            name: "seeds",
            ..
        }))
    ));
    assert!(matches!(
        study::seed_range(u64::MAX, 2, 1),
        Err(StudyError::Pipeline(PipelineError::InvalidSetting {
            name: "seed",
            ..
        }))
    ));
    assert_eq!(
        study::seed_range(u64::MAX, 1, 1).expect("valid"),
        [u64::MAX]
    );
}

#[test]
fn a_diverged_run_is_recorded_and_the_study_goes_on() {
    let mut diverging = Study::new("diverging", "synthetic 6×6", None);
    let base = small_study().runs()[6].config.clone();
    diverging.push("fine", 0, base.clone());
    diverging.push(
        "blows up",
        0,
        TrainConfig {
            lr: 1e30,
            ..base.clone()
        },
    );
    diverging.push("fine after", 0, base.clone());
    diverging.push("huge L2", 0, TrainConfig { l2: 1e308, ..base });
    let (train, validation, test) = splits();
    let work = |run: &study::StudyRun| {
        experiments::run(
            &run.variant,
            run.config.clone(),
            &train,
            &validation,
            &test,
            &mut (),
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let outcome = study::execute(
        &diverging,
        Shard::WHOLE,
        1,
        None,
        Some(dir.path()),
        &work,
        &|_, _| {},
    )
    .expect("a diverged run does not stop the study");
    assert_eq!(outcome.ran, 4);
    assert!(outcome.results[3].diverged.is_some(), "L2 = 1e308 diverges");
    let diverged = outcome.results[1].diverged.as_ref().expect("recorded");
    assert!(diverged.epoch >= 1 && diverged.step >= 1, "{diverged:?}");
    assert!(outcome.results[2].diverged.is_none());
    let merged = study::merge(dir.path()).expect("a diverged run merges");
    let report = Report::new(&merged);
    assert_eq!(report.diverged.len(), 2);
    assert!(report.markdown(false).contains("blows up, seed 0"));
}

#[test]
fn a_restarted_run_replaces_its_own_tensorboard_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (train, validation, test) = splits();
    let study = small_study();
    let run = &study.runs()[0];
    let splits = experiments::Splits {
        train: &train,
        validation: &validation,
        test: &test,
    };
    for _ in 0..2 {
        experiments::run_study_run(run, splits, Some(dir.path()), true).expect("runs");
    }
    let folders: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
    assert_eq!(folders.len(), 1, "one folder per run");
    let folder = folders[0].as_ref().expect("entry").path();
    let mut parts: Vec<String> = std::fs::read_dir(&folder)
        .expect("listed")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    assert_eq!(parts, ["train", "validation"], "Keras's layout");
    for part in parts {
        let files = std::fs::read_dir(folder.join(&part))
            .expect("listed")
            .count();
        assert_eq!(files, 1, "one event file in {}/{part}", folder.display());
    }
}

#[test]
fn plot_is_refused_for_one_shard_of_several() {
    let args = study::StudyArgs {
        shard: Some(Shard::new(1, 3).expect("valid")),
        shard_count: None,
        results: None,
        merge: None,
        jobs: 1,
        threads: None,
    };
    assert!(matches!(
        args.check(true),
        Err(StudyError::ResultsFolderRequired { .. })
    ));
    let args = study::StudyArgs {
        results: Some("results".into()),
        ..args
    };
    assert!(matches!(
        args.check(true),
        Err(StudyError::NeedsWholeStudy { .. })
    ));
    assert!(args.check(false).is_ok());
}

/// `small_study` with a data digest in its definition, as the examples set it.
fn study_on(digest: &str) -> Study {
    small_study().with_data_digest(digest)
}

fn execute_study(study: &Study, shard: Shard, dir: &Path) -> Result<study::Outcome, StudyError> {
    let (train, validation, test) = splits();
    let work = |run: &study::StudyRun| {
        experiments::run(
            &run.variant,
            run.config.clone(),
            &train,
            &validation,
            &test,
            &mut (),
        )
    };
    study::execute(study, shard, 1, None, Some(dir), &work, &|_, _| {})
}

#[test]
fn a_result_on_other_data_is_refused_naming_both_digests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Shard::new(0, 9).expect("valid");
    execute_study(&study_on("aaaa"), first, dir.path()).expect("runs");
    // The same study restarted on other data does not take run 0 as finished.
    match execute_study(&study_on("bbbb"), first, dir.path()) {
        Err(StudyError::OtherData {
            found, expected, ..
        }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("aaaa", "bbbb"));
        }
        other => panic!("expected OtherData: {other:?}"),
    }
    // Another shard run on other data in the same folder: the merge refuses it.
    execute_study(
        &study_on("bbbb"),
        Shard::new(1, 9).expect("valid"),
        dir.path(),
    )
    .expect("runs");
    assert!(matches!(
        study::merge(dir.path()),
        Err(StudyError::OtherData { .. })
    ));
}

#[test]
fn a_result_of_another_product_path_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Shard::new(0, 9).expect("valid");
    let study = study_on("aaaa");
    execute_study(&study, first, dir.path()).expect("runs");
    let other = if reg_pipeline::nn::product_path() == "avx512" {
        "portable"
    } else {
        "avx512"
    };
    tamper(dir.path(), 0, true, |j| j["product_path"] = other.into());
    assert!(matches!(
        execute_study(&study, first, dir.path()),
        Err(StudyError::OtherProductPath { .. })
    ));
    let merged = {
        let dir = finished_folder();
        study::merge(dir.path()).expect("complete")
    };
    let table = Report::new(&merged).markdown(false);
    assert!(
        table.contains(&format!(
            "Matrix products: {}.",
            reg_pipeline::nn::product_path()
        )),
        "{table}"
    );
}

#[test]
fn two_writers_of_one_run_leave_one_whole_file() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let study = study_on("aaaa");
        let first = Shard::new(0, 9).expect("valid");
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| execute_study(&study, first, dir.path())))
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().expect("no panic"))
                .collect()
        });
        for outcome in outcomes {
            outcome.expect("both writers succeed");
        }
        // The file is whole and trusted: a restart skips it.
        let again = execute_study(&study, first, dir.path()).expect("restart");
        assert_eq!((again.ran, again.skipped), (0, 1));
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
        assert_eq!(left.len(), 1, "no temporary file left");
    }
}

#[test]
fn a_finished_run_file_is_never_replaced_by_a_second_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = study_on("aaaa");
    let first = Shard::new(0, 9).expect("valid");
    // The file another writer of run 0 wrote, told apart by its time.
    let mut theirs = execute_study(&study, first, dir.path())
        .expect("runs")
        .results[0]
        .clone();
    theirs.seconds = 123.0;
    let path = study::result_path(dir.path(), 0);
    std::fs::remove_file(&path).expect("removed");
    let (train, validation, test) = splits();
    // This writer trains run 0 while the other one finishes it and writes its file.
    let work = |run: &study::StudyRun| {
        let ran = experiments::run(
            &run.variant,
            run.config.clone(),
            &train,
            &validation,
            &test,
            &mut (),
        );
        std::fs::write(&path, theirs.file_bytes().expect("serializes")).expect("written");
        ran
    };
    study::execute(&study, first, 1, None, Some(dir.path()), &work, &|_, _| {})
        .expect("the second writer accepts the first one's file");
    let kept: RunResult =
        serde_json::from_slice(&std::fs::read(&path).expect("readable")).expect("JSON");
    assert_eq!(kept.seconds, 123.0, "the first writer's file stays");
}
