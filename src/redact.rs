//! INTERIM redactor until the real one lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub kinds: Vec<String>,
}
impl Redacted {
    pub fn changed(&self) -> bool {
        !self.kinds.is_empty()
    }
}
pub fn redact(text: &str) -> Redacted {
    let mut kinds = vec![];
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            if w.contains("TOKEN=") || w.starts_with("ghp_") {
                kinds.push("secret".to_string());
                "[REDACTED:secret:00000000]".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    Redacted {
        text: words.join(" "),
        kinds,
    }
}
pub fn sanitize_command(text: &str) -> Redacted {
    redact(text)
}
pub fn operation_summary(text: &str) -> String {
    let s = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        "shell".into()
    } else if s.chars().count() > 96 {
        format!("{}...", s.chars().take(93).collect::<String>())
    } else {
        s
    }
}
