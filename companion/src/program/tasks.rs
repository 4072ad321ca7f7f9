//! The program's IEC tasks, read from the `TASK` declarations of the bundle's `program.st`
//! (both Editor generations ship it): `TASK name(INTERVAL := T#10ms, PRIORITY := 1);`.
//!
//! rt-core runs every due task of a program on its one scan thread (the STruC++ adapter at
//! the GCD of the intervals, MatIEC's `config_run__` on its base tick) and keeps one
//! statistics record for that scan; the task list lets `/api/status?include_stats=true`
//! name each task with its period and priority in upstream's `timing_stats.tasks[]` shape.
//! Per-task figures come later from rt-core itself.

use std::path::Path;
use std::sync::{Arc, Mutex};

/// Most tasks read from one program.
pub const MAX_TASKS: usize = 64;
/// Longest task name kept.
const MAX_NAME: usize = 64;
/// Largest `program.st` read.
const MAX_SOURCE: u64 = 16 * 1024 * 1024;

/// One declared task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDecl {
    /// Upper case, as STruC++ and upstream's runtime report it (IEC names ignore case).
    pub name: String,
    /// `INTERVAL`, when the task is cyclic.
    pub interval_ns: Option<u64>,
    /// `PRIORITY` (0 is the highest), 0 when not given.
    pub priority: i64,
}

/// The source without its comments (`(* … *)`, nestable as MatIEC allows, and `// …`), and
/// without string literals (a `'TASK x(...)'` in a string is not a task).
fn strip(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match (depth, c, chars.peek().copied()) {
            (_, '(', Some('*')) => {
                chars.next();
                depth += 1;
                out.push(' ');
            }
            (d, '*', Some(')')) if d > 0 => {
                chars.next();
                depth -= 1;
            }
            (0, '/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            (0, quote @ ('\'' | '"'), _) => {
                for n in chars.by_ref() {
                    if n == quote {
                        break;
                    }
                }
                out.push(' ');
            }
            (0, c, _) => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// An IEC duration literal (`T#10ms`, `TIME#1h2m`, `t#1.5s`, `LT#250us`) in nanoseconds.
pub fn duration_ns(literal: &str) -> Option<u64> {
    let text = literal.trim().to_ascii_lowercase().replace('_', "");
    let body = ["ltime#", "time#", "lt#", "t#"].iter().find_map(|p| text.strip_prefix(p))?;
    if body.is_empty() || body.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "d" => 86_400e9,
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += number * scale;
    }
    (total.is_finite() && total >= 0.0 && total < u64::MAX as f64).then_some(total as u64)
}

/// The `TASK` declarations of an ST source, in declaration order (at most [`MAX_TASKS`]).
/// Anything that does not read as a declaration is passed over.
pub fn parse(source: &str) -> Vec<TaskDecl> {
    let text = strip(source);
    let upper = text.to_ascii_uppercase();
    let mut tasks = Vec::new();
    let mut from = 0;
    while let Some(found) = upper[from..].find("TASK") {
        let at = from + found;
        from = at + 4;
        let before = text[..at].chars().next_back();
        let after = text[at + 4..].chars().next();
        if before.is_some_and(is_word) || after.is_some_and(is_word) {
            continue;
        }
        if let Some(task) = declaration(&text[at + 4..]) {
            tasks.push(task);
            if tasks.len() == MAX_TASKS {
                break;
            }
        }
    }
    tasks
}

/// ` name ( key := value, … ) ;` after the keyword.
fn declaration(rest: &str) -> Option<TaskDecl> {
    let rest = rest.trim_start();
    let name_end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() || name.len() > MAX_NAME || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let rest = rest[name_end..].trim_start().strip_prefix('(')?;
    let close = rest.find(')')?;
    if !rest[close + 1..].trim_start().starts_with(';') {
        return None;
    }
    let mut task = TaskDecl { name: name.to_ascii_uppercase(), interval_ns: None, priority: 0 };
    for setting in rest[..close].split(',') {
        let Some((key, value)) = setting.split_once(":=") else { continue };
        match key.trim().to_ascii_uppercase().as_str() {
            "INTERVAL" => task.interval_ns = duration_ns(value),
            "PRIORITY" => task.priority = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(task)
}

/// The current program's tasks, read once per program.
#[derive(Default)]
pub struct TaskCache {
    cache: Mutex<Option<(String, Arc<Vec<TaskDecl>>)>>,
}

impl TaskCache {
    /// The tasks of the program `id` whose bundle is at `sources` (empty when its
    /// `program.st` cannot be read or declares none).
    pub fn of(&self, id: &str, sources: &Path) -> Arc<Vec<TaskDecl>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, tasks)) = &*cache
            && cached == id
        {
            return tasks.clone();
        }
        let tasks = Arc::new(read(&sources.join("program.st")));
        *cache = Some((id.to_string(), tasks.clone()));
        tasks
    }
}

fn read(path: &Path) -> Vec<TaskDecl> {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else { return Vec::new() };
    let mut bytes = Vec::new();
    if file.take(MAX_SOURCE).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    parse(&String::from_utf8_lossy(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_spelling() {
        assert_eq!(duration_ns("T#10ms"), Some(10_000_000));
        assert_eq!(duration_ns("TIME#1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(duration_ns("t#1.5s"), Some(1_500_000_000));
        assert_eq!(duration_ns("LT#250us"), Some(250_000));
        assert_eq!(duration_ns("T#1_000ms"), Some(1_000_000_000));
        assert_eq!(duration_ns("T#1d"), Some(86_400_000_000_000));
        for bad in ["10ms", "T#", "T#-5ms", "T#5parsecs", "T#1..2s", "T#ms"] {
            assert_eq!(duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_demo_configuration_declares_one_task() {
        let st = "CONFIGURATION Config0\n  RESOURCE Res0 ON PLC\n    TASK task0(INTERVAL := T#10ms,PRIORITY := 0);\n    \
                  PROGRAM instance0 WITH task0 : main;\n  END_RESOURCE\nEND_CONFIGURATION\n";
        assert_eq!(parse(st), vec![TaskDecl { name: "TASK0".into(), interval_ns: Some(10_000_000), priority: 0 }]);
    }

    #[test]
    fn several_tasks_and_what_is_not_a_task() {
        let st = "(* TASK commented(INTERVAL := T#1s); (* nested *) *)\n\
                  // TASK lined(INTERVAL := T#1s);\n\
                  VAR s : STRING := 'TASK quoted(INTERVAL := T#1s);'; MY_TASK : INT; END_VAR\n\
                  TASK Fast (INTERVAL := t#5ms , PRIORITY := 1);\n\
                  task slow(priority := 3, interval := T#50ms);\n\
                  TASK event(SINGLE := trigger, PRIORITY := 2);\n\
                  TASK broken(INTERVAL := T#5ms\n\
                  PROGRAM p WITH fast : main;";
        let tasks = parse(st);
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["FAST", "SLOW", "EVENT"]);
        assert_eq!((tasks[0].interval_ns, tasks[0].priority), (Some(5_000_000), 1));
        assert_eq!((tasks[1].interval_ns, tasks[1].priority), (Some(50_000_000), 3));
        assert_eq!((tasks[2].interval_ns, tasks[2].priority), (None, 2));
    }

    #[test]
    fn at_most_max_tasks() {
        let st: String = (0..100).map(|i| format!("TASK t{i}(INTERVAL := T#{i}ms);\n")).collect();
        assert_eq!(parse(&st).len(), MAX_TASKS);
    }
}
