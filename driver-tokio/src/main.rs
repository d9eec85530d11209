//! `meridian-node`: the operator binary. Running real nodes arrives with issue 8; until
//! then it says so instead of pretending.

fn main() {
    eprintln!("meridian-node: the tokio driver is not built yet (issue 8); use meridian-sim");
    std::process::exit(2);
}
