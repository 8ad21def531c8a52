//! Topic permissions from an ACL file in Mosquitto's `acl_file` syntax:
//!
//! ```text
//! # lines before any `user` line apply to every client, with a username or without
//! # (Mosquitto applies them to clients without a username only)
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! # `pattern` lines apply to every client; %c is its client identifier, %u its username
//! pattern write devices/%c/status
//! ```
//!
//! The access is `read`, `write`, `readwrite` (the default when omitted) or `deny`. With an ACL
//! file, everything not granted is denied. A `deny` line wins over any grant.
//!
//! Decisions are made where the client acts, so nothing it is denied ever reaches it:
//! - PUBLISH: the topic must be matched by a `write` grant and by no `deny`;
//! - SUBSCRIBE: every topic the filter can match must be readable, that is the filter must be
//!   *covered* by one `read` grant (`a/+` covers `a/b`, `a/#` covers `a/b/c`; `a/b` does not
//!   cover `a/+`), and no `deny` may match any topic it can match. A filter that is only partly
//!   readable is refused, rather than granted and filtered at delivery as Mosquitto 2.0 does.
//! - a will's topic must be writable at CONNECT.

use std::collections::HashMap;
use std::path::Path;

use super::http::HookAction;

/// Most HTTP hook decisions one connection keeps; past it the table starts over (before a
/// packet's answers are recorded, never in the middle of them).
const MAX_CONNECTION_DECISIONS: usize = 16_384;

/// What a line grants or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    /// Denies reading and writing (the ACL file's `deny`).
    Deny,
    /// Denies publishing only (a token's or a hook's `deny` rule for `publish`).
    DenyWrite,
    /// Denies subscribing and receiving only (a `deny` rule for `subscribe`).
    DenyRead,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }

    fn denies_read(self) -> bool {
        matches!(self, Access::Deny | Access::DenyRead)
    }

    fn denies_write(self) -> bool {
        matches!(self, Access::Deny | Access::DenyWrite)
    }
}

/// Which operations a granted rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// PUBLISH (and wills).
    Publish,
    /// SUBSCRIBE and the deliveries it brings.
    Subscribe,
    /// Both.
    All,
}

/// One rule that a token or an HTTP hook gave a client: allow or deny an action on a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRule {
    /// Allow (true) or deny (false).
    pub allow: bool,
    /// What it is about.
    pub action: RuleAction,
    /// The topic filter, with `${clientid}` and `${username}` (or `%c`, `%u`) not yet filled in.
    pub filter: String,
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    filter: String,
}

/// The rules of an ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// `topic` lines before any `user` line: every client's.
    anonymous: Vec<Rule>,
    /// `topic` lines by user.
    users: HashMap<String, Vec<Rule>>,
    /// `pattern` lines, for every client.
    patterns: Vec<Rule>,
}

/// An ACL file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct AclError {
    /// The file.
    pub path: String,
    /// What is wrong, with its line number.
    pub problem: String,
}

impl Acl {
    /// Reads the file. An unreadable file, a malformed line and a file without a single rule
    /// are errors: an empty ACL would deny everything by mistake, or be read as no ACL at all.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let fail = |problem: String| AclError { path: path.display().to_string(), problem };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let acl = Acl::parse(&text).map_err(fail)?;
        if acl.anonymous.is_empty() && acl.users.values().all(Vec::is_empty) && acl.patterns.is_empty() {
            return Err(fail("it has no topic or pattern rule".to_owned()));
        }
        Ok(acl)
    }

    /// Parses the text of an ACL file.
    pub fn parse(text: &str) -> Result<Acl, String> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |problem: &str| format!("line {}: {problem}", number + 1);
            let (keyword, rest) =
                line.split_once(char::is_whitespace).ok_or_else(|| at("a keyword and a value"))?;
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(at("`user` needs a username"));
                    }
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let (access, filter) = match rest.split_once(char::is_whitespace) {
                        Some((word, filter)) if access_of(word).is_some() => (access_of(word), filter.trim()),
                        _ => (Some(Access::ReadWrite), rest),
                    };
                    let access = access.unwrap_or(Access::ReadWrite);
                    if iothub_protocol::validate_topic_filter(filter).is_err() {
                        return Err(at(&format!("{filter:?} is not a topic filter")));
                    }
                    let rule = Rule { access, filter: filter.to_owned() };
                    match (keyword, &user) {
                        ("pattern", _) => acl.patterns.push(rule),
                        (_, Some(user)) => acl.users.entry(user.clone()).or_default().push(rule),
                        (_, None) => acl.anonymous.push(rule),
                    }
                }
                other => return Err(at(&format!("unknown keyword {other:?}; use topic, user or pattern"))),
            }
        }
        Ok(acl)
    }

    /// The rules that apply to a client, with `%c` and `%u` of the patterns filled in.
    fn rules_for(&self, client_id: &str, username: Option<&str>) -> Vec<Rule> {
        let mut rules = self.anonymous.clone();
        if let Some(rules_of_user) = username.and_then(|user| self.users.get(user)) {
            rules.extend(rules_of_user.iter().cloned());
        }
        for pattern in &self.patterns {
            if pattern.filter.contains("%u") && username.is_none() {
                continue;
            }
            let filled = substitute(&pattern.filter, client_id, username);
            // A client identifier or username with wildcards or separators would widen the
            // pattern: such a pattern grants nothing (a deny still applies, widened).
            let widened =
                filled != pattern.filter && !substitution_is_plain(client_id, username, &pattern.filter);
            if widened && pattern.access != Access::Deny {
                continue;
            }
            rules.push(Rule { access: pattern.access, filter: filled });
        }
        rules
    }

    /// The permissions of one client.
    pub fn permissions(&self, client_id: &str, username: Option<&str>) -> Permissions {
        Permissions {
            rules: self.rules_for(client_id, username),
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            from_file: true,
            decisions: None,
            published: HashMap::new(),
        }
    }

    /// The same client's permissions under these rules: after a reload, for a session whose
    /// permissions came from the previous file. Permissions a token or a hook granted are kept.
    pub fn permissions_again(&self, previous: &Permissions) -> Permissions {
        if !previous.from_file {
            return previous.clone();
        }
        let mut again = self.permissions(&previous.client_id, previous.username.as_deref());
        again.decisions.clone_from(&previous.decisions);
        again
    }
}

fn access_of(word: &str) -> Option<Access> {
    match word {
        "read" => Some(Access::Read),
        "write" => Some(Access::Write),
        "readwrite" => Some(Access::ReadWrite),
        "deny" => Some(Access::Deny),
        _ => None,
    }
}

/// `pattern` with `%c` and `%u` filled in, in one pass: a value holding `%u` is not expanded
/// again.
fn substitute(pattern: &str, client_id: &str, username: Option<&str>) -> String {
    let mut filled = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        filled.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("%c") {
            filled.push_str(client_id);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("%u") {
            filled.push_str(username.unwrap_or(""));
            rest = tail;
        } else {
            filled.push('%');
            rest = &after[1..];
        }
    }
    filled.push_str(rest);
    filled
}

fn substitution_is_plain(client_id: &str, username: Option<&str>, pattern: &str) -> bool {
    // A value starting with `$` would move a pattern that starts with it into `$SYS`-like
    // topics, which wildcards never reach.
    let plain = |s: &str| !s.contains(['+', '#', '/']) && !s.is_empty() && !s.starts_with('$');
    (!pattern.contains("%c") || plain(client_id)) && (!pattern.contains("%u") || username.is_some_and(plain))
}

/// What one client may do.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    rules: Vec<Rule>,
    /// Whose they are, to compute them again when the file changes.
    client_id: String,
    username: Option<String>,
    /// Whether they came from the ACL file (and a reload of it applies to them).
    from_file: bool,
    /// With an HTTP ACL hook: its decisions for this connection, `None` for "ignore" (the rules
    /// decide). A topic or filter not in the table has not been asked about yet.
    decisions: Option<HashMap<(HookAction, String), Option<bool>>>,
    /// Publish decisions already made for this connection, so that a client publishing to the
    /// same topics again costs one lookup, not a pass over its rules.
    published: HashMap<String, bool>,
}

impl Permissions {
    /// Permissions with no rule at all (everything denied unless a hook allows it).
    pub(crate) fn none(client_id: &str, username: Option<&str>) -> Permissions {
        Permissions {
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            ..Permissions::default()
        }
    }

    /// Lets an HTTP ACL hook decide topics first; these rules decide what it ignores.
    pub(crate) fn with_hook(mut self) -> Permissions {
        self.decisions = Some(HashMap::new());
        self
    }

    /// Whether an HTTP hook decides, and `action` on `topic` has not been asked about yet.
    pub(crate) fn needs_decision(&self, action: HookAction, topic: &str) -> bool {
        self.decisions.as_ref().is_some_and(|decisions| !decisions.contains_key(&(action, topic.to_owned())))
    }

    /// Records the hook's answers to one packet's questions (`None`: it ignored the question).
    pub(crate) fn record_decisions(&mut self, answers: Vec<((HookAction, String), Option<bool>)>) {
        let Some(decisions) = &mut self.decisions else { return };
        if decisions.len() + answers.len() > MAX_CONNECTION_DECISIONS {
            decisions.clear();
        }
        for ((action, topic), allowed) in answers {
            self.published.remove(&topic);
            decisions.insert((action, topic), allowed);
        }
    }

    /// Forgets answers that stood for a failure to get one, once the packet they were for is
    /// handled: the next packet asks again.
    pub(crate) fn forget_decisions(&mut self, keys: &[(HookAction, String)]) {
        if let Some(decisions) = &mut self.decisions {
            for key in keys {
                decisions.remove(key);
                self.published.remove(&key.1);
            }
        }
    }

    /// What the hook decided, when it decides: `Some` to answer now, `None` for the rules to
    /// decide (it ignored the question). A question never asked is refused.
    fn decision(&self, action: HookAction, topic: &str) -> Option<bool> {
        let decisions = self.decisions.as_ref()?;
        match decisions.get(&(action, topic.to_owned())) {
            None => Some(false),
            Some(answer) => *answer,
        }
    }

    /// The permissions a token or an HTTP hook gave a client: only what `rules` allow, a deny
    /// winning over any allow. Placeholders are filled in; a client identifier or username
    /// that would widen a filter (it holds `+`, `#` or `/`) makes that allow rule grant
    /// nothing, as with the ACL file's patterns.
    pub fn granted(client_id: &str, username: Option<&str>, rules: &[GrantedRule]) -> Permissions {
        let mut filled = Vec::with_capacity(rules.len());
        for rule in rules {
            let template = rule.filter.replace("${clientid}", "%c").replace("${username}", "%u");
            if template.contains("%u") && username.is_none() && rule.allow {
                continue;
            }
            let filter = substitute(&template, client_id, username);
            let widened = filter != template && !substitution_is_plain(client_id, username, &template);
            // An allow that a substitution widened or broke grants nothing; a deny stays, as
            // broad as it came out.
            if rule.allow && (widened || iothub_protocol::validate_topic_filter(&filter).is_err()) {
                continue;
            }
            let access = match (rule.allow, rule.action) {
                (true, RuleAction::Publish) => Access::Write,
                (true, RuleAction::Subscribe) => Access::Read,
                (true, RuleAction::All) => Access::ReadWrite,
                (false, RuleAction::Publish) => Access::DenyWrite,
                (false, RuleAction::Subscribe) => Access::DenyRead,
                (false, RuleAction::All) => Access::Deny,
            };
            filled.push(Rule { access, filter });
        }
        Permissions {
            rules: filled,
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            from_file: false,
            decisions: None,
            published: HashMap::new(),
        }
    }

    /// Whether the client may publish to `topic`.
    pub fn can_publish(&self, topic: &str) -> bool {
        if let Some(allowed) = self.decision(HookAction::Publish, topic) {
            return allowed;
        }
        let denied = self.rules.iter().any(|r| r.access.denies_write() && filter_matches(&r.filter, topic));
        !denied && self.rules.iter().any(|r| r.access.writes() && filter_matches(&r.filter, topic))
    }

    /// `can_publish`, from this connection's cache of decisions when it can.
    pub(crate) fn check_publish(&mut self, topic: &str) -> bool {
        if let Some(&allowed) = self.published.get(topic) {
            return allowed;
        }
        let allowed = self.can_publish(topic);
        if self.published.len() >= MAX_CONNECTION_DECISIONS {
            self.published.clear();
        }
        self.published.insert(topic.to_owned(), allowed);
        allowed
    }

    /// Whether the client may receive a message published to `topic`.
    pub fn can_read(&self, topic: &str) -> bool {
        let denied = self.rules.iter().any(|r| r.access.denies_read() && filter_matches(&r.filter, topic));
        if self.decisions.is_some() {
            // The hook decided the subscription that brings the message.
            return !denied;
        }
        !denied && self.rules.iter().any(|r| r.access.reads() && filter_matches(&r.filter, topic))
    }

    /// Whether the client may subscribe to `filter`: every topic it can match is readable.
    pub fn can_subscribe(&self, filter: &str) -> bool {
        if let Some(allowed) = self.decision(HookAction::Subscribe, filter) {
            return allowed;
        }
        let filter = strip_share(filter);
        let denied = self.rules.iter().any(|r| r.access.denies_read() && intersects(&r.filter, filter));
        !denied && self.rules.iter().any(|r| r.access.reads() && covers(&r.filter, filter))
    }
}

/// The filter of a shared subscription `$share/{group}/{filter}`, or the filter itself.
fn strip_share(filter: &str) -> &str {
    filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')).map_or(filter, |(_, filter)| filter)
}

/// Whether `filter` matches `topic` (4.7), with 4.7.2's rule that a wildcard first level does
/// not match a topic starting with `$`.
fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic `inner` can match is matched by `outer`.
fn covers(outer: &str, inner: &str) -> bool {
    if inner.starts_with('$') && (outer.starts_with('+') || outer.starts_with('#')) {
        return false;
    }
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(a), Some(b)) if a == b && b != "#" && b != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic is matched by both filters.
fn intersects(a: &str, b: &str) -> bool {
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous
topic read public/#
user alice
topic readwrite alice/#
topic deny alice/secret
topic sensors/+/temp
pattern write devices/%c/status
pattern read users/%u/#
";

    #[test]
    fn publish_needs_a_write_grant_and_no_deny() {
        let acl = Acl::parse(FILE).unwrap();
        let alice = acl.permissions("dev1", Some("alice"));
        assert!(alice.can_publish("alice/x"));
        assert!(!alice.can_publish("alice/secret"));
        assert!(alice.can_publish("devices/dev1/status"));
        assert!(!alice.can_publish("devices/dev2/status"));
        assert!(alice.can_publish("sensors/k/temp"), "readwrite when no access is named");
        assert!(!alice.can_publish("public/x"));
        assert!(alice.can_subscribe("public/#"), "rules before any user line are everyone's");
        let anonymous = acl.permissions("anon", None);
        assert!(!anonymous.can_publish("public/x"));
    }

    #[test]
    fn a_subscription_must_be_covered_by_a_read_grant_and_meet_no_deny() {
        let acl = Acl::parse(FILE).unwrap();
        let alice = acl.permissions("dev1", Some("alice"));
        assert!(alice.can_subscribe("alice/a/b"));
        assert!(alice.can_subscribe("alice/+/b"));
        assert!(!alice.can_subscribe("alice/#"), "it would match alice/secret");
        assert!(!alice.can_subscribe("#"));
        assert!(!alice.can_subscribe("sensors/#"), "only sensors/+/temp is granted");
        assert!(alice.can_subscribe("sensors/+/temp"));
        assert!(alice.can_subscribe("users/alice/inbox"));
        assert!(!alice.can_subscribe("users/bob/inbox"));
        assert!(alice.can_subscribe("$share/g/alice/jobs"));
        let anonymous = acl.permissions("anon", None);
        assert!(anonymous.can_subscribe("public/#"));
        assert!(!anonymous.can_subscribe("alice/x"));
    }

    #[test]
    fn a_client_id_with_wildcards_does_not_widen_a_pattern() {
        let acl = Acl::parse(FILE).unwrap();
        let sneaky = acl.permissions("#", Some("alice"));
        assert!(!sneaky.can_publish("devices/other/status"));
        let slash = acl.permissions("a/b", Some("alice"));
        assert!(!slash.can_publish("devices/a/b/status"));
    }

    #[test]
    fn malformed_lines_are_named() {
        for text in ["topic", "topic read a/#/b", "grant read a", "user"] {
            let error = Acl::parse(text).unwrap_err();
            assert!(error.contains("line 1"), "{text}: {error}");
        }
    }
}
