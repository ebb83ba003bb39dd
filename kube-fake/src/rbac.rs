//! Authorization as the API server's RBAC authorizer does it: Roles and ClusterRoles, bound
//! to users, groups and service accounts by RoleBindings and ClusterRoleBindings; which rule
//! allowed each request is remembered, so a test can show every rule is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};

use crate::status::{ApiError, Target};

/// Who sent a request, from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
    /// The cluster admin: RBAC does not apply.
    pub admin: bool,
}

impl User {
    /// `system:serviceaccount:<ns>:<name>`, in the groups Kubernetes gives service accounts.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        User {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            admin: false,
        }
    }

    /// The administrator (as `kubectl` with cluster-admin would be).
    pub fn admin() -> Self {
        User {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            admin: true,
        }
    }
}

/// What a request asks to do, in RBAC's terms.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub verb: &'a str,
    pub namespace: &'a str,
    pub target: Target<'a>,
    pub subresource: Option<&'a str>,
}

impl Request<'_> {
    fn resource(&self) -> String {
        match self.subresource {
            Some(sub) => format!("{}/{sub}", self.target.resource),
            None => self.target.resource.to_string(),
        }
    }
}

/// One thing a rule allows: a verb on a resource, perhaps only on one named object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// The role, as `Role <namespace>/<name>` or `ClusterRole <name>`.
    pub role: String,
    /// Index of the rule in the role's `rules`.
    pub rule: usize,
    /// The verb (`get`, `list`, `watch`, `patch`, `update`, `delete`, `create`, or `*`).
    pub verb: String,
    /// The API group ("" for the core group).
    pub api_group: String,
    /// The resource, with its subresource if any (`deployments/scale`).
    pub resource: String,
    /// The object's name where the rule lists `resourceNames`.
    pub resource_name: Option<String>,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "\"\""
        } else {
            &self.api_group
        };
        write!(
            f,
            "{} rule {}: {} {group}/{}",
            self.role, self.rule, self.verb, self.resource
        )?;
        if let Some(name) = &self.resource_name {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

/// Which grants of the loaded roles requests used, and which none did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacUsage {
    /// Grants that allowed at least one request.
    pub used: Vec<Grant>,
    /// Grants no request needed (a least-privilege Role has none).
    pub unused: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Binding {
    /// The RoleBinding's namespace; None for a ClusterRoleBinding.
    namespace: Option<String>,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// The loaded roles and bindings, and the grants used so far.
#[derive(Debug, Default)]
pub(crate) struct Rbac {
    roles: BTreeMap<(String, String), Vec<PolicyRule>>,
    cluster_roles: BTreeMap<String, Vec<PolicyRule>>,
    bindings: BTreeMap<(Option<String>, String), Binding>,
    used: BTreeSet<Grant>,
}

impl Rbac {
    pub fn put_role(&mut self, namespace: &str, name: &str, rules: Vec<PolicyRule>) {
        self.roles.insert((namespace.into(), name.into()), rules);
    }

    pub fn put_cluster_role(&mut self, name: &str, rules: Vec<PolicyRule>) {
        self.cluster_roles.insert(name.into(), rules);
    }

    /// A RoleBinding (`namespace` Some) or ClusterRoleBinding (None).
    pub fn put_binding(
        &mut self,
        namespace: Option<&str>,
        name: &str,
        role_ref: RoleRef,
        subjects: Vec<Subject>,
    ) {
        let binding = Binding {
            namespace: namespace.map(String::from),
            role_ref,
            subjects,
        };
        self.bindings
            .insert((namespace.map(String::from), name.into()), binding);
    }

    /// Allows the request or answers 403 as the API server words it.
    pub fn authorize(&mut self, user: &User, request: &Request<'_>) -> Result<(), ApiError> {
        if user.admin {
            return Ok(());
        }
        let resource = request.resource();
        for binding in self.bindings.values() {
            if binding
                .namespace
                .as_deref()
                .is_some_and(|ns| ns != request.namespace)
                || !binding
                    .subjects
                    .iter()
                    .any(|s| subject_is(s, user, binding.namespace.as_deref()))
            {
                continue;
            }
            let (role, rules) = match binding.role_ref.kind.as_str() {
                "Role" => {
                    let Some(ns) = binding.namespace.as_deref() else {
                        continue;
                    };
                    let key = (ns.to_string(), binding.role_ref.name.clone());
                    (
                        format!("Role {ns}/{}", binding.role_ref.name),
                        self.roles.get(&key),
                    )
                }
                _ => (
                    format!("ClusterRole {}", binding.role_ref.name),
                    self.cluster_roles.get(&binding.role_ref.name),
                ),
            };
            let Some(rules) = rules else { continue };
            if let Some((index, rule)) = rules
                .iter()
                .enumerate()
                .find(|(_, r)| allows(r, request, &resource))
            {
                let grant = Grant {
                    role,
                    rule: index,
                    verb: request.verb.to_string(),
                    api_group: request.target.group.to_string(),
                    resource,
                    resource_name: rule
                        .resource_names
                        .as_ref()
                        .filter(|n| !n.is_empty())
                        .map(|_| request.target.name.to_string()),
                };
                self.used.insert(grant);
                return Ok(());
            }
        }
        let target = request.target;
        let subject = if target.name.is_empty() {
            target.qualified()
        } else {
            format!("{} \"{}\"", target.qualified(), target.name)
        };
        let message = format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
            user.name, request.verb, target.group, request.namespace
        );
        Err(ApiError::forbidden(
            message,
            (!target.name.is_empty()).then_some(target),
        ))
    }

    /// Every grant of every bound role, split by whether a request used it.
    pub fn usage(&self) -> RbacUsage {
        let mut usage = RbacUsage {
            used: self.used.iter().cloned().collect(),
            unused: Vec::new(),
        };
        let roles = self
            .roles
            .iter()
            .map(|((ns, name), rules)| (format!("Role {ns}/{name}"), rules));
        let cluster_roles = self
            .cluster_roles
            .iter()
            .map(|(name, rules)| (format!("ClusterRole {name}"), rules));
        for (role, rules) in roles.chain(cluster_roles) {
            for (index, rule) in rules.iter().enumerate() {
                for grant in expand(&role, index, rule) {
                    if !self.used.iter().any(|u| covers(&grant, u)) {
                        usage.unused.push(grant);
                    }
                }
            }
        }
        usage
    }
}

fn subject_is(subject: &Subject, user: &User, binding_namespace: Option<&str>) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .or(binding_namespace)
                .unwrap_or_default();
            user.name == format!("system:serviceaccount:{ns}:{}", subject.name)
        }
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        _ => false,
    }
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item == "*" || item == value)
}

fn allows(rule: &PolicyRule, request: &Request<'_>, resource: &str) -> bool {
    let resources = rule.resources.as_deref().unwrap_or_default();
    let resource_matches = resources.iter().any(|r| {
        r == "*"
            || r == resource
            || request
                .subresource
                .is_some_and(|sub| *r == format!("*/{sub}"))
    });
    let names = rule.resource_names.as_deref().unwrap_or_default();
    listed(&rule.verbs, request.verb)
        && listed(
            rule.api_groups.as_deref().unwrap_or_default(),
            request.target.group,
        )
        && resource_matches
        && (names.is_empty() || names.iter().any(|n| n == request.target.name))
}

fn expand(role: &str, index: usize, rule: &PolicyRule) -> Vec<Grant> {
    let names: Vec<Option<String>> = match rule.resource_names.as_deref() {
        Some(names) if !names.is_empty() => names.iter().cloned().map(Some).collect(),
        _ => vec![None],
    };
    let mut grants = Vec::new();
    for group in rule.api_groups.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            for verb in &rule.verbs {
                for name in &names {
                    grants.push(Grant {
                        role: role.to_string(),
                        rule: index,
                        verb: verb.clone(),
                        api_group: group.clone(),
                        resource: resource.clone(),
                        resource_name: name.clone(),
                    });
                }
            }
        }
    }
    grants
}

/// Whether `used` is an instance of `grant` (wildcards in the grant match anything).
fn covers(grant: &Grant, used: &Grant) -> bool {
    let wild = |g: &str, u: &str| g == "*" || g == u;
    let resource = grant.resource == used.resource
        || grant.resource == "*"
        || grant
            .resource
            .strip_prefix("*/")
            .is_some_and(|sub| used.resource.ends_with(&format!("/{sub}")));
    grant.role == used.role
        && grant.rule == used.rule
        && wild(&grant.verb, &used.verb)
        && wild(&grant.api_group, &used.api_group)
        && resource
        && (grant.resource_name.is_none() || grant.resource_name == used.resource_name)
}
