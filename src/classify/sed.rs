//! A small scanner for sed scripts: does the script write files or run commands?

/// True when `script` may write a file or run a command (`w`, `W`, `e`, `s///w`, `s///e`), or
/// when it cannot be scanned with confidence. Never panics.
pub fn script_mutates(script: &str) -> bool {
    let c: Vec<char> = script.chars().collect();
    let mut i = 0;
    let n = c.len();
    while i < n {
        // Separators and blanks.
        while i < n && (c[i].is_whitespace() || c[i] == ';') {
            i += 1;
        }
        if i >= n {
            return false;
        }
        // Address part: numbers, `$`, `/re/`, `\cREc`, ranges, steps, negation.
        loop {
            if i >= n {
                return false;
            }
            match c[i] {
                '0'..='9' | '$' | ',' | '~' | '+' | '!' | ' ' | '\t' => i += 1,
                '/' => match skip_delimited(&c, i + 1, '/') {
                    Some(j) => {
                        i = j;
                        while i < n && (c[i] == 'I' || c[i] == 'M') {
                            i += 1;
                        }
                    }
                    None => return true,
                },
                '\\' => {
                    let Some(&d) = c.get(i + 1) else { return true };
                    match skip_delimited(&c, i + 2, d) {
                        Some(j) => {
                            i = j;
                            while i < n && (c[i] == 'I' || c[i] == 'M') {
                                i += 1;
                            }
                        }
                        None => return true,
                    }
                }
                _ => break,
            }
        }
        let cmd = c[i];
        i += 1;
        match cmd {
            '{' | '}' | '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P' | 'x'
            | 'z' | 'F' => {}
            'l' | 'L' | 'q' | 'Q' => {
                while i < n && (c[i].is_ascii_digit() || c[i] == ' ') {
                    i += 1;
                }
            }
            // Labels, comments and text arguments run to the end of the line.
            '#' | ':' | 'b' | 't' | 'T' | 'a' | 'i' | 'c' | 'r' | 'R' | 'v' => {
                while i < n && c[i] != '\n' {
                    if matches!(cmd, 'b' | 't' | 'T' | 'v') && (c[i] == ';' || c[i] == '}') {
                        break;
                    }
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            'w' | 'W' | 'e' => return true,
            's' => {
                let Some(&d) = c.get(i) else { return true };
                if d == '\n' || d == '\\' {
                    return true;
                }
                let Some(j) = skip_delimited(&c, i + 1, d) else {
                    return true;
                };
                let Some(k) = skip_delimited(&c, j, d) else {
                    return true;
                };
                i = k;
                while i < n && !matches!(c[i], ';' | '\n' | '}') {
                    match c[i] {
                        'w' | 'W' | 'e' => return true,
                        'g' | 'p' | 'i' | 'I' | 'm' | 'M' | ' ' | '\t' | '0'..='9' => i += 1,
                        _ => return true,
                    }
                }
            }
            'y' => {
                let Some(&d) = c.get(i) else { return true };
                let Some(j) = skip_delimited(&c, i + 1, d) else {
                    return true;
                };
                let Some(k) = skip_delimited(&c, j, d) else {
                    return true;
                };
                i = k;
            }
            _ => return true,
        }
    }
    false
}

/// From `start`, skip to just past the next unescaped `delim`; `None` if there is none.
fn skip_delimited(c: &[char], start: usize, delim: char) -> Option<usize> {
    let mut i = start;
    while i < c.len() {
        if c[i] == '\\' {
            i += 2;
            continue;
        }
        if c[i] == delim {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::script_mutates;

    #[test]
    fn scripts() {
        for ok in [
            "p",
            "1,5p",
            "/foo/p",
            "s/a/b/g",
            "s|a/b|c|gI",
            "$d",
            "10q",
            "/^#/d;s/x/y/2",
            "1!G;h;$!d",
            "y/abc/xyz/",
            "/a/,/b/{p}",
            r"s/\/w/x/",
        ] {
            assert!(!script_mutates(ok), "{ok}");
        }
        for bad in [
            "w out",
            "1w /tmp/x",
            "s/a/b/w f",
            "s/a/b/e",
            "e rm -rf /",
            "/x/W f",
            "s/a/b",
            "1{w f\n}",
            "k",
        ] {
            assert!(script_mutates(bad), "{bad}");
        }
    }
}
