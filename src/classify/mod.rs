//! INTERIM classifier until the parser-based one lands: everything is mutating and HIGH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}
impl Risk {
    pub fn as_wire(self) -> &'static str {
        match self {
            Risk::Low => "RISK_LEVEL_LOW",
            Risk::Medium => "RISK_LEVEL_MEDIUM",
            Risk::High => "RISK_LEVEL_HIGH",
            Risk::Critical => "RISK_LEVEL_CRITICAL",
        }
    }
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommandVerdict {
    pub program: String,
    pub argv: Vec<String>,
    pub read_only: bool,
    pub risk: Risk,
    pub reason: String,
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct Classification {
    pub read_only: bool,
    pub risk: Risk,
    pub commands: Vec<CommandVerdict>,
    pub reasons: Vec<String>,
    pub parse_error: Option<String>,
}
pub fn classify(text: &str) -> Classification {
    let ro = ["ls", "cat", "pwd", "echo", "git status"]
        .iter()
        .any(|p| text.trim() == *p || text.trim().starts_with(&format!("{p} ")))
        && !text.contains(['>', ';', '|', '&', '$', '`']);
    Classification {
        read_only: ro,
        risk: if ro {
            Risk::Low
        } else if text.contains("rm -rf") {
            Risk::Critical
        } else {
            Risk::High
        },
        commands: vec![],
        reasons: vec![],
        parse_error: None,
    }
}
pub fn classify_script(_text: Option<&str>) -> Classification {
    classify(";")
}
