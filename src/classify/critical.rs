//! CRITICAL by effect: shapes that destroy data or infrastructure, publish, change power
//! state or wipe disks, whatever the spelling (option prefixes, bundles, global options before
//! the verb). Over-approximation is safe here: it only raises the risk of a command that is
//! already not read-only.

use super::walk::Arg;

/// Does `raw` (source text of a word) name the home directory or everything in it?
pub fn is_home(raw: &str) -> bool {
    let r = raw.trim_matches('"');
    let r = r.trim_end_matches('*').trim_end_matches('/');
    matches!(r, "~" | "$HOME" | "${HOME}" | "\"$HOME\"" | "\"${HOME}\"")
        || raw.starts_with("\"$HOME\"")
            && raw
                .trim_start_matches("\"$HOME\"")
                .trim_end_matches('*')
                .trim_end_matches('/')
                .is_empty()
}

/// Paths where deletion or a recursive permission change is a disaster.
pub fn is_root_like(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    matches!(
        p,
        "" | "/*"
            | "~"
            | "$HOME"
            | "/etc"
            | "/usr"
            | "/var"
            | "/bin"
            | "/sbin"
            | "/lib"
            | "/home"
            | "/root"
            | "/boot"
            | "/opt"
            | "/System"
            | "/Users"
    ) || path == "/"
        || path == "/*"
}

/// Block devices and disks: writing to them destroys file systems.
pub fn is_block_device(path: &str) -> bool {
    let Some(dev) = path.strip_prefix("/dev/") else {
        return false;
    };
    [
        "sd", "hd", "vd", "xvd", "nvme", "mmcblk", "disk", "mapper/", "md", "dm-", "loop", "sr",
        "rdisk",
    ]
    .iter()
    .any(|p| dev.starts_with(p))
}

/// Database clients that run statements from their arguments or stdin.
pub fn is_sql_client(prog: &str) -> bool {
    matches!(
        prog,
        "psql"
            | "mysql"
            | "mariadb"
            | "sqlite3"
            | "sqlcmd"
            | "clickhouse-client"
            | "clickhouse"
            | "mongosh"
            | "mongo"
            | "redis-cli"
            | "cockroach"
            | "duckdb"
            | "cqlsh"
    )
}

/// Does a destructive SQL / database statement appear in `t`?
pub fn destructive_sql(t: &str) -> bool {
    let l = t.to_ascii_lowercase();
    let words: Vec<&str> = l
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        (w[0] == "drop"
            && matches!(
                w[1],
                "table"
                    | "database"
                    | "schema"
                    | "index"
                    | "view"
                    | "user"
                    | "role"
                    | "keyspace"
                    | "collection"
                    | "owned"
            ))
            || (w[0] == "delete" && w[1] == "from")
            || w[0] == "truncate"
    }) || [
        "dropdatabase",
        ".drop(",
        "flushall",
        "flushdb",
        "deletemany",
    ]
    .iter()
    .any(|k| l.contains(k))
}

/// The words that are not options, skipping the values of `valued` options (global options
/// before a verb: `kubectl -n prod delete`). Unknown options are assumed to take no value,
/// which can only make more words look like verbs (over-approximation).
fn verbs<'a>(t: &[&'a str], valued: &[&str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let w = t[i];
        if w == "--" {
            out.extend(&t[i + 1..]);
            break;
        }
        if w.starts_with('-') && w.len() > 1 {
            if valued.contains(&w) {
                i += 1;
            }
        } else if w.starts_with('+') && out.is_empty() {
            // `cargo +nightly`
        } else {
            out.push(w);
        }
        i += 1;
    }
    out
}

/// Is `long` (without dashes, maybe `=value`) an unambiguous-looking prefix of `full`?
fn long_prefix(word: &str, full: &str, min: usize) -> bool {
    let Some(l) = word.strip_prefix("--") else {
        return false;
    };
    let l = l.split('=').next().unwrap_or(l);
    l.len() >= min && full.starts_with(l)
}

fn short_has(t: &[&str], c: char) -> bool {
    t.iter()
        .any(|f| f.starts_with('-') && !f.starts_with("--") && f[1..].contains(c))
}

/// `Some(reason)` makes the command CRITICAL. `args` are the words after the program name.
// One arm per program reads better than guards spread over the match.
#[allow(clippy::collapsible_match)]
pub fn shape(prog: &str, args: &[Arg]) -> Option<String> {
    // Only programs with a rule below look at their words (wrapper chains judge the same
    // long argv at every level: this keeps each level O(1) for everything else).
    const PROGRAMS: &[&str] = &[
        "rm",
        "find",
        "rsync",
        "git",
        "gh",
        "docker",
        "podman",
        "nerdctl",
        "kubectl",
        "oc",
        "helm",
        "npm",
        "pnpm",
        "yarn",
        "bun",
        "cargo",
        "twine",
        "poetry",
        "uv",
        "flit",
        "hatch",
        "pdm",
        "maturin",
        "gem",
        "mvn",
        "mvnw",
        "gradle",
        "gradlew",
        "dotnet",
        "vsce",
        "ovsx",
        "terraform",
        "tofu",
        "terragrunt",
        "pulumi",
        "cdk",
        "cdktf",
        "serverless",
        "sls",
        "aws",
        "gcloud",
        "az",
        "doctl",
        "flyctl",
        "fly",
        "heroku",
        "vercel",
        "psql",
        "mysql",
        "mariadb",
        "sqlite3",
        "sqlcmd",
        "clickhouse-client",
        "clickhouse",
        "mongosh",
        "mongo",
        "redis-cli",
        "cockroach",
        "duckdb",
        "cqlsh",
        "dd",
        "mkfs",
        "mke2fs",
        "mkswap",
        "wipefs",
        "fdisk",
        "sfdisk",
        "cfdisk",
        "gdisk",
        "sgdisk",
        "parted",
        "blkdiscard",
        "shred",
        "diskutil",
        "format",
        "badblocks",
        "cryptsetup",
        "lvremove",
        "vgremove",
        "pvremove",
        "zpool",
        "mdadm",
        "hdparm",
        "nvme",
        "sg_format",
        "flashrom",
        "dmsetup",
        "chmod",
        "chown",
        "chgrp",
        "mv",
        "cp",
        "truncate",
        "shutdown",
        "reboot",
        "halt",
        "poweroff",
        "kexec",
        "systemctl",
        "loginctl",
        "init",
        "telinit",
        "kill",
        "pkill",
        "crontab",
        "cat",
        "tee",
        "pv",
    ];
    if !PROGRAMS.contains(&prog) && !prog.starts_with("mkfs") {
        return None;
    }
    if prog == "find" {
        // `find -exec find …` chains judge the rest at every level: one pass, no copies.
        return args
            .iter()
            .any(|a| a.plain() == Some("-delete"))
            .then(|| "find -delete deletes recursively".into());
    }
    let t: Vec<&str> = args.iter().filter_map(Arg::plain).collect();
    let raws = || args.iter().map(|a| a.raw.as_str());
    let long = |full: &str, min: usize| t.iter().any(|w| long_prefix(w, full, min));
    let has = |w: &str| t.contains(&w);
    let home_target = args.iter().any(|a| is_home(&a.raw));
    let pos: Vec<&str> = t.iter().filter(|f| !f.starts_with('-')).copied().collect();
    let v = |valued: &[&str]| verbs(&t, valued);
    let seq = |words: &[&str], a: &str, bs: &[&str]| {
        words
            .iter()
            .position(|w| *w == a)
            .is_some_and(|i| words[i + 1..].iter().any(|w| bs.contains(w)))
    };
    match prog {
        "rm" => {
            if short_has(&t, 'r') || short_has(&t, 'R') || long("recursive", 3) {
                return Some("recursive delete".into());
            }
            if long("no-preserve-root", 3) {
                return Some("rm --no-preserve-root".into());
            }
            if home_target || pos.iter().any(|p| is_root_like(p)) {
                return Some("deletes the home directory or a system path".into());
            }
        }
        "rsync"
            if t.iter()
                .any(|w| w.starts_with("--del") || w.starts_with("--remove-source")) =>
        {
            return Some("rsync --delete removes files at the destination".into())
        }
        "git" => {
            let words = v(&[
                "-C",
                "-c",
                "--git-dir",
                "--work-tree",
                "--namespace",
                "--config-env",
            ]);
            let sub = words.first().copied();
            let after: Vec<&str> = t
                .iter()
                .skip_while(|w| Some(**w) != sub)
                .skip(1)
                .copied()
                .collect();
            match sub {
                Some("push") => {
                    if after.iter().any(|f| {
                        long_prefix(f, "force", 3)
                            || long_prefix(f, "force-with-lease", 7)
                            || long_prefix(f, "mirror", 3)
                            || long_prefix(f, "delete", 3)
                            || long_prefix(f, "prune", 3)
                            || (f.starts_with('-')
                                && !f.starts_with("--")
                                && (f.contains('f') || f.contains('d')))
                            || (f.starts_with('+') && f.len() > 1)
                            || (f.starts_with(':') && f.len() > 1)
                    }) {
                        return Some("force push / remote ref deletion".into());
                    }
                }
                Some("clean") => {
                    let dry = after
                        .iter()
                        .any(|f| *f == "-n" || long_prefix(f, "dry-run", 3));
                    if !dry
                        && (short_has(&after, 'f')
                            || after.iter().any(|f| long_prefix(f, "force", 3)))
                    {
                        return Some("git clean deletes untracked files recursively".into());
                    }
                }
                Some("reset") if after.iter().any(|f| long_prefix(f, "hard", 3)) => {
                    return Some("git reset --hard discards work".into())
                }
                Some("filter-branch" | "filter-repo") => {
                    return Some("rewrites repository history".into())
                }
                _ => {}
            }
        }
        "gh" => {
            let w = v(&["-R", "--repo", "--hostname"]);
            if seq(
                &w,
                "release",
                &["delete", "create", "upload", "delete-asset", "edit"],
            ) || seq(&w, "repo", &["delete", "archive", "rename"])
                || seq(&w, "secret", &["delete", "remove"])
                || (w.first() == Some(&"api")
                    && raws().any(|r| r.to_ascii_uppercase().contains("DELETE")))
            {
                return Some("gh deletes or publishes (release / repository)".into());
            }
        }
        "docker" | "podman" | "nerdctl" => {
            let w = v(&[
                "-H",
                "--host",
                "--context",
                "-c",
                "--config",
                "-l",
                "--log-level",
            ]);
            if w.first() == Some(&"push")
                || w.contains(&"prune")
                || seq(&w, "image", &["push"])
                || seq(&w, "volume", &["rm", "remove"])
                || seq(&w, "buildx", &["build"]) && has("--push")
            {
                return Some(format!("{prog} publishes images or prunes data"));
            }
        }
        "kubectl" | "oc" => {
            let w = v(&[
                "-n",
                "--namespace",
                "--context",
                "--cluster",
                "--user",
                "--kubeconfig",
                "-s",
                "--server",
                "-l",
                "--selector",
                "-f",
                "--filename",
                "-o",
                "--output",
            ]);
            if w.first().is_some_and(|s| matches!(*s, "delete" | "drain")) {
                return Some(format!("{prog} deletes cluster resources"));
            }
        }
        "helm" => {
            let w = v(&["-n", "--namespace", "--kube-context", "--kubeconfig"]);
            if w.first()
                .is_some_and(|s| matches!(*s, "uninstall" | "delete" | "del" | "un"))
            {
                return Some("helm uninstall removes a release".into());
            }
        }
        "npm" | "pnpm" | "yarn" | "bun" => {
            let w = v(&[
                "-w",
                "--workspace",
                "--prefix",
                "-C",
                "--dir",
                "--filter",
                "--registry",
                "--otp",
                "--tag",
                "--access",
            ]);
            if w.iter().any(|s| matches!(*s, "publish" | "unpublish")) {
                return Some(format!("{prog} publishes a package"));
            }
        }
        "cargo" => {
            let w = v(&[
                "--config",
                "-Z",
                "--color",
                "--manifest-path",
                "-p",
                "--package",
            ]);
            if w.first()
                .is_some_and(|s| matches!(*s, "publish" | "yank" | "owner"))
            {
                return Some("cargo publishes to a registry".into());
            }
        }
        "twine" if pos.first() == Some(&"upload") => {
            return Some("uploads a package to PyPI".into())
        }
        "poetry" | "uv" | "flit" | "hatch" | "pdm" | "maturin" if pos.contains(&"publish") => {
            return Some("publishes a package".into())
        }
        "gem" if matches!(pos.first(), Some(&"push" | &"yank")) => {
            return Some("publishes a gem".into())
        }
        "mvn" | "mvnw" if t.iter().any(|w| w.starts_with("deploy")) => {
            return Some("deploys artifacts".into())
        }
        "gradle" | "gradlew" if t.iter().any(|f| f.starts_with("publish")) => {
            return Some("publishes artifacts".into())
        }
        "dotnet" if seq(&pos, "nuget", &["push", "delete"]) => {
            return Some("dotnet nuget pushes or deletes a package".into())
        }
        "vsce" | "ovsx" if pos.iter().any(|p| matches!(*p, "publish" | "unpublish")) => {
            return Some("publishes an extension".into())
        }
        "terraform" | "tofu" | "terragrunt" => {
            let w = v(&["-chdir"]);
            if w.contains(&"destroy")
                || (w.contains(&"apply")
                    && t.iter().any(|f| f.trim_start_matches('-') == "destroy"))
            {
                return Some("destroys infrastructure".into());
            }
        }
        "pulumi" | "cdk" | "cdktf" if pos.contains(&"destroy") => {
            return Some("destroys infrastructure".into())
        }
        "serverless" | "sls" if pos.contains(&"remove") => {
            return Some("removes a deployed service".into())
        }
        "aws" => {
            if t.iter()
                .any(|f| f.starts_with("delete-") || f.starts_with("terminate-"))
                || pos.contains(&"rb")
                || (pos.contains(&"s3")
                    && (has("--delete")
                        || (pos.contains(&"rm") && (has("--recursive") || short_has(&t, 'r')))))
            {
                return Some("deletes cloud resources".into());
            }
        }
        "gcloud" | "az" | "doctl" | "flyctl" | "fly" | "heroku" | "vercel"
            if t.iter().any(|f| {
                matches!(*f, "delete" | "destroy" | "remove" | "rm") || f.ends_with(":destroy")
            }) =>
        {
            return Some("deletes cloud resources".into())
        }
        "psql" | "mysql" | "mariadb" | "sqlite3" | "sqlcmd" | "clickhouse-client"
        | "clickhouse" | "mongosh" | "mongo" | "redis-cli" | "cockroach" | "duckdb" | "cqlsh"
            if t.iter().any(|w| destructive_sql(w)) =>
        {
            return Some(format!(
                "{prog} runs a destructive statement (DROP/TRUNCATE/DELETE)"
            ))
        }
        "dd" => {
            if let Some(of) = t.iter().find_map(|f| f.strip_prefix("of=")) {
                if of.starts_with("/dev/")
                    && !matches!(of, "/dev/null" | "/dev/stdout" | "/dev/stderr")
                {
                    return Some(format!("dd writes to device {of}"));
                }
            }
        }
        "mkfs" | "mke2fs" | "mkswap" | "wipefs" | "fdisk" | "sfdisk" | "cfdisk" | "gdisk"
        | "sgdisk" | "parted" | "blkdiscard" | "shred" | "diskutil" | "format" | "badblocks"
        | "cryptsetup" | "lvremove" | "vgremove" | "pvremove" | "zpool" | "mdadm" | "hdparm"
        | "nvme" | "sg_format" | "flashrom" | "dmsetup" => {
            return Some(format!("{prog} destroys disk data or partitions"))
        }
        p if p.starts_with("mkfs.") || p.starts_with("mkfs_") => {
            return Some(format!("{prog} formats a file system"))
        }
        "chmod" | "chown" | "chgrp" => {
            let recursive = short_has(&t, 'R') || long("recursive", 3);
            if home_target || recursive && pos.iter().skip(1).any(|p| is_root_like(p)) {
                return Some(format!("{prog} of the home directory or a system path"));
            }
        }
        "mv" | "cp" | "truncate" => {
            if home_target
                || pos
                    .iter()
                    .any(|p| matches!(*p, "/" | "/*") || is_block_device(p))
            {
                return Some(format!(
                    "{prog} overwrites or moves the home directory, root or a device"
                ));
            }
        }
        "shutdown" | "reboot" | "halt" | "poweroff" | "kexec" => {
            return Some("changes the machine's power state".into())
        }
        "systemctl" | "loginctl"
            if t.iter().any(|w| {
                matches!(
                    *w,
                    "poweroff"
                        | "reboot"
                        | "halt"
                        | "kexec"
                        | "suspend"
                        | "hibernate"
                        | "hybrid-sleep"
                        | "rescue"
                        | "emergency"
                        | "isolate"
                        | "soft-reboot"
                )
            }) =>
        {
            return Some("changes the machine's power state".into())
        }
        "init" | "telinit" if matches!(pos.first(), Some(&"0" | &"6" | &"1")) => {
            return Some("changes the machine's power state".into())
        }
        "kill" | "pkill" if t.iter().any(|f| *f == "-1" || *f == "1") && t.len() >= 2 => {
            return Some("kills every process or init".into())
        }
        "crontab" if short_has(&t, 'r') => return Some("crontab -r deletes every job".into()),
        _ => {}
    }
    let writes_device = matches!(prog, "cp" | "cat" | "tee" | "pv" | "dd")
        && t.iter()
            .any(|f| is_block_device(f.trim_start_matches("of=")));
    writes_device.then(|| "writes to a block device".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_and_home() {
        assert!(destructive_sql("DROP TABLE users"));
        assert!(destructive_sql("db.dropDatabase()"));
        assert!(!destructive_sql("select * from t"));
        assert!(is_home("~") && is_home("$HOME") && is_home("\"$HOME\"") && is_home("~/*"));
        assert!(!is_home("~/x"));
    }
}
