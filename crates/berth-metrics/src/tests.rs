use super::*;

fn sample(cpu: f64, ram: f64) -> Sample {
    let mut s = Sample::default();
    s.set(Metric::Cpu, Some(cpu));
    s.set(Metric::Ram, Some(ram));
    s
}

#[test]
fn folds_average_and_maximum_per_step() {
    let d = tempfile::tempdir().unwrap();
    let mut st = Store::open(d.path()).unwrap();
    let t0 = 1_000_000_000 / 21600 * 21600; // a 6 h boundary: all tiers start a step here
    st.record(t0, &[(101, sample(10.0, 100.0))]).unwrap();
    st.record(t0 + 5, &[(101, sample(30.0, 300.0))]).unwrap();
    st.record(t0 + 10, &[(101, sample(50.0, 200.0))]).unwrap();
    let fine = st.rows(101, 0, t0 + 10, 3600).unwrap();
    assert_eq!(fine.len(), 2);
    assert_eq!(fine[0].time, t0);
    assert_eq!(
        fine[0].points[0],
        Some(Point {
            avg: 20.0,
            max: 30.0
        })
    );
    assert_eq!(
        fine[1].points[1],
        Some(Point {
            avg: 200.0,
            max: 200.0
        })
    );
    assert_eq!(fine[0].points[2], None, "disk was never given");
    let minute = st.rows(101, 1, t0 + 10, 86400).unwrap();
    assert_eq!(minute.len(), 1);
    assert_eq!(
        minute[0].points[0],
        Some(Point {
            avg: 30.0,
            max: 50.0
        })
    );
    // Another container is separate.
    assert!(st.rows(102, 0, t0 + 10, 3600).unwrap().is_empty());
}

#[test]
fn a_missing_metric_does_not_lower_the_average() {
    let d = tempfile::tempdir().unwrap();
    let mut st = Store::open(d.path()).unwrap();
    st.record(100, &[(1, sample(40.0, 1.0))]).unwrap();
    st.record(101, &[(1, Sample::default())]).unwrap();
    let mut nan = Sample::default();
    nan.set(Metric::Cpu, Some(f64::NAN));
    st.record(102, &[(1, nan)]).unwrap();
    let r = st.rows(1, 0, 102, 3600).unwrap();
    assert_eq!(
        r[0].points[0],
        Some(Point {
            avg: 40.0,
            max: 40.0
        })
    );
}

#[test]
fn a_simulated_year_stays_bounded() {
    let d = tempfile::tempdir().unwrap();
    let mut st = Store::open(d.path()).unwrap();
    let t0 = 1_700_000_000u64;
    let year = 366 * 86400;
    // Every 30 min for most of the year, every 60 s for the last 2 days and every 10 s for
    // the last hour: every slot of every tier gets written, several laps of the fine ones.
    let mut t = t0;
    while t < t0 + year {
        st.record(t, &[(7, sample((t % 100) as f64, 1e9))]).unwrap();
        let left = t0 + year - t;
        t += if left <= 3600 {
            10
        } else if left <= 2 * 86400 {
            60
        } else {
            1800
        };
    }
    assert_eq!(st.row_count(7).unwrap(), ROWS_PER_CONTAINER);
    let bytes = st.used_bytes().unwrap();
    assert!(
        bytes < BYTES_PER_CONTAINER,
        "{bytes} bytes for one container's year"
    );
    let now = t - 10;
    assert_eq!(st.rows(7, 0, now, 3600).unwrap().len(), 360);
    assert_eq!(st.rows(7, 3, now, 365 * 86400).unwrap().len(), 1460);
    st.forget(7).unwrap();
    assert_eq!(st.row_count(7).unwrap(), 0);
}

#[test]
fn tiers_cover_their_ranges() {
    assert_eq!(tier_for(3600), 0);
    assert_eq!(tier_for(86400), 1);
    assert_eq!(tier_for(7 * 86400), 2);
    assert_eq!(tier_for(365 * 86400), 3);
    assert_eq!(
        TIERS.iter().map(|t| t.rows).sum::<u64>(),
        ROWS_PER_CONTAINER
    );
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_store_recreated() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    fs::write(db_path(d.path()), vec![0x5au8; 8192]).unwrap();
    let mut st = Store::open(d.path()).unwrap();
    st.record(100, &[(1, sample(1.0, 1.0))]).unwrap();
    assert_eq!(st.row_count(1).unwrap(), 4);
    let aside: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("metrics.db.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    let mode = fs::metadata(db_path(d.path()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_damaged_page_is_moved_aside_too() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut st = Store::open(d.path()).unwrap();
        for t in 0..5000 {
            st.record(t * 10, &[(1, sample(1.0, 1.0))]).unwrap();
        }
    }
    let p = db_path(d.path());
    let mut b = fs::read(&p).unwrap();
    let len = b.len();
    for x in &mut b[4096..len.min(4096 * 3)] {
        *x = 0xff;
    }
    fs::write(&p, b).unwrap();
    let mut st = Store::open(d.path()).unwrap();
    st.record(100, &[(1, sample(1.0, 1.0))]).unwrap();
    assert_eq!(st.row_count(1).unwrap(), 4);
}
