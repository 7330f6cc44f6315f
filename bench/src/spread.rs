//! Several servers: which server each connection goes to, and on which servers the two sides
//! of a pair sit. Pairing is random on the server side, so to put a pair's sides where this
//! tool wants them, `relay` and `connections` ask in a fixed order (`Placement::Split` and
//! `Placement::Same`): side A requests and is told to wait, then side B requests and, nobody
//! else waiting, joins A.

use anyhow::bail;

/// Where the sides of the pairs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// One server: every connection requests as soon as it is open, in any order (as before
    /// there were several servers).
    Single,
    /// Pair p's side A on server p mod U, side B on the next server: every pair spans two
    /// processes. Requests go one at a time, A then B.
    Split,
    /// Both sides of pair p on server p mod U. Requests go one at a time, A then B.
    Same,
}

/// `--split-pairs` / `--same-process`, for the scenarios that make pairs (`relay`,
/// `connections`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct PairArgs {
    /// With several URLs, put the two sides of each pair on different servers (the default
    /// with more than one URL).
    #[arg(long, conflicts_with = "same_process")]
    pub split_pairs: bool,
    /// Put both sides of each pair on the same server (pairs still spread round-robin over the
    /// servers), made in the same fixed order as `--split-pairs`, for comparison with it. With
    /// one URL too: the pairs are then made in order rather than all at once.
    #[arg(long)]
    pub same_process: bool,
}

impl Placement {
    pub fn resolve(urls: usize, a: &PairArgs) -> anyhow::Result<Placement> {
        Ok(match (urls, a.split_pairs, a.same_process) {
            (0, ..) => bail!("no --url"),
            (1, true, _) => bail!("--split-pairs needs at least two --url"),
            (_, _, true) => Placement::Same,
            (1, ..) => Placement::Single,
            _ => Placement::Split,
        })
    }

    /// Whether pairs are made one at a time in a fixed order.
    pub fn ordered(self) -> bool {
        self != Placement::Single
    }

    /// The server (index into the URLs) of side `side` (0 = A, 1 = B) of pair `pair`, among
    /// `urls` servers.
    pub fn endpoint(self, urls: usize, pair: u64, side: u64) -> usize {
        let urls = urls.max(1) as u64;
        (match self {
            Placement::Single => 0,
            Placement::Split => (pair + side.min(1)) % urls,
            Placement::Same => pair % urls,
        }) as usize
    }

    /// How many connections each of `urls` servers gets from pairs `first..first + pairs`.
    pub fn connections_each(self, urls: usize, first: u64, pairs: u64) -> Vec<u64> {
        let mut each = vec![0; urls.max(1)];
        for p in first..first + pairs {
            for side in 0..2 {
                each[self.endpoint(urls, p, side)] += 1;
            }
        }
        each
    }

    pub fn name(self) -> &'static str {
        match self {
            Placement::Single => "single",
            Placement::Split => "split",
            Placement::Same => "same-process",
        }
    }

    pub fn parse(name: &str) -> Option<Placement> {
        [Placement::Single, Placement::Split, Placement::Same]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Splits `total` items into `parts` nearly equal runs: (first index, count) of each.
pub fn share(total: u64, parts: u64) -> Vec<(u64, u64)> {
    let parts = parts.max(1);
    let mut first = 0;
    (0..parts)
        .map(|p| {
            let count = total / parts + u64::from(p < total % parts);
            let run = (first, count);
            first += count;
            run
        })
        .collect()
}

/// `--extra-pid NAME=PID`.
pub fn parse_extra_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=PID"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "{name:?}: a name is letters, digits, '-', '_' or '.'"
        ));
    }
    let pid = pid
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{pid:?} is not a PID"))?;
    Ok((name.to_owned(), pid))
}

/// The server PIDs for `urls` servers from `--server-pid`: none given (each found from its
/// port later), one per URL, or one for a single URL.
pub fn server_pids(urls: usize, given: &[u32]) -> anyhow::Result<Vec<Option<u32>>> {
    match given.len() {
        0 => Ok(vec![None; urls]),
        n if n == urls => Ok(given.iter().map(|p| Some(*p)).collect()),
        n => {
            bail!("{n} --server-pid for {urls} --url: give one per URL, in the same order, or none")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pa(split: bool, same: bool) -> PairArgs {
        PairArgs {
            split_pairs: split,
            same_process: same,
        }
    }

    #[test]
    fn placement_follows_the_urls_and_flags() {
        let cases = [
            (1, pa(false, false), Placement::Single),
            (1, pa(false, true), Placement::Same),
            (2, pa(false, false), Placement::Split),
            (3, pa(true, false), Placement::Split),
            (2, pa(false, true), Placement::Same),
        ];
        for (urls, flags, want) in cases {
            assert_eq!(
                Placement::resolve(urls, &flags).unwrap(),
                want,
                "{urls} {flags:?}"
            );
        }
        assert!(Placement::resolve(1, &pa(true, false)).is_err());
        assert!(Placement::resolve(0, &pa(false, false)).is_err());
        for p in [Placement::Single, Placement::Split, Placement::Same] {
            assert_eq!(Placement::parse(p.name()), Some(p));
        }
        assert!(!Placement::Single.ordered() && Placement::Split.ordered());
    }

    #[test]
    fn split_pairs_span_two_servers_and_same_pairs_one() {
        for urls in 2..5 {
            for pair in 0..20 {
                let (a, b) = (
                    Placement::Split.endpoint(urls, pair, 0),
                    Placement::Split.endpoint(urls, pair, 1),
                );
                assert_ne!(a, b, "urls {urls} pair {pair}");
                assert!(a < urls && b < urls);
                assert_eq!(a, pair as usize % urls, "pairs go round-robin");
                let s = Placement::Same;
                assert_eq!(s.endpoint(urls, pair, 0), s.endpoint(urls, pair, 1));
                assert_eq!(s.endpoint(urls, pair, 1), pair as usize % urls);
            }
        }
        assert_eq!(Placement::Single.endpoint(1, 7, 1), 0);
    }

    #[test]
    fn servers_get_equal_shares() {
        // 59,700 connections on 3 servers: 19,900 each, whichever way the pairs are split
        // among the generator's processes.
        for p in [Placement::Split, Placement::Same] {
            assert_eq!(p.connections_each(3, 0, 29_850), vec![19_900; 3]);
            let mut total = vec![0; 3];
            for (first, count) in share(29_850, 4) {
                for (t, n) in total.iter_mut().zip(p.connections_each(3, first, count)) {
                    *t += n;
                }
            }
            assert_eq!(total, vec![19_900; 3]);
        }
        assert_eq!(Placement::Split.connections_each(2, 0, 3), vec![3, 3]);
        assert_eq!(Placement::Same.connections_each(2, 0, 3), vec![4, 2]);
    }

    #[test]
    fn shares_cover_everything_once() {
        assert_eq!(share(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(share(2, 4), vec![(0, 1), (1, 1), (2, 0), (2, 0)]);
        assert_eq!(share(5, 0), vec![(0, 5)]);
        let s = share(29_850, 4);
        assert_eq!(s.iter().map(|r| r.1).sum::<u64>(), 29_850);
        assert!(
            s.iter().all(|r| r.1 * 2 < 20_000),
            "each process under the fd limit"
        );
    }

    #[test]
    fn extra_pids_and_server_pids_parse() {
        assert_eq!(parse_extra_pid("redis=42"), Ok(("redis".into(), 42)));
        assert_eq!(
            parse_extra_pid(" redis-server = 7 "),
            Ok(("redis-server".into(), 7))
        );
        assert!(parse_extra_pid("redis").is_err());
        assert!(parse_extra_pid("=4").is_err());
        assert!(parse_extra_pid("a b=4").is_err());
        assert!(parse_extra_pid("redis=x").is_err());
        assert_eq!(server_pids(2, &[]).unwrap(), vec![None, None]);
        assert_eq!(server_pids(2, &[5, 6]).unwrap(), vec![Some(5), Some(6)]);
        assert!(server_pids(3, &[5, 6]).is_err());
        assert_eq!(server_pids(1, &[5]).unwrap(), vec![Some(5)]);
    }
}
