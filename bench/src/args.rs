//! The benchmark binaries' few command-line flags (until `ordo bench` parses them with clap).

/// The whole number after `flag` in `args`, or `default`; a value that is not one ends the
/// program with a one-sentence error and exit code 2.
pub fn number(program: &str, args: &[String], flag: &str, default: u64) -> u64 {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map_or(default, |value| {
        value.parse().unwrap_or_else(|_| {
            eprintln!("{program}: {flag} takes a whole number, not {value:?}");
            std::process::exit(2)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_gives_its_number_or_the_default() {
        let args: Vec<String> = ["--rate", "500", "--json"].iter().map(|s| s.to_string()).collect();
        assert_eq!(number("test", &args, "--rate", 7), 500);
        assert_eq!(number("test", &args, "--seconds", 7), 7);
    }
}
