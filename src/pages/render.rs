//! The page templates (`templates/`), compiled into the binary and into one environment at
//! first use. Every value is escaped for HTML; only the recap fragment, rendered (and escaped)
//! by the email templates, is passed in as safe markup.

use std::sync::LazyLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::Serialize;

use super::PageError;

const TEMPLATES: &[(&str, &str)] = &[
    ("style.css", include_str!("templates/style.css")),
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("call.html", include_str!("templates/call.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("insights.html", include_str!("templates/insights.html")),
    ("absences.html", include_str!("templates/absences.html")),
    ("home.html", include_str!("templates/home.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
];

static PAGES: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(environment);

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_debug(false);
    // A misspelt field fails the page's tests instead of vanishing from the page.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// Renders page `name` with `ctx`.
pub fn render(name: &str, ctx: Value) -> Result<String, PageError> {
    let env = PAGES.as_ref().map_err(|e| {
        tracing::error!(error = %e, "page templates do not compile");
        PageError::internal()
    })?;
    env.get_template(name).and_then(|t| t.render(ctx)).map_err(|e| {
        tracing::error!(error = %e, template = name, "page does not render");
        PageError::internal()
    })
}

/// Markup that is already escaped (the recap fragment), to print as it is.
pub fn safe(html: String) -> Value {
    Value::from_safe_string(html)
}

/// A value for a template from anything serializable.
pub fn value(v: &impl Serialize) -> Value {
    Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_templates_compile_and_escape_everything() {
        assert!(PAGES.as_ref().is_ok(), "{:?}", PAGES.as_ref().err());
        let error = PageError::not_found("<b>\"x\" onclick='y'</b>");
        let page = render("error.html", minijinja::context! { error => value(&error) }).unwrap();
        assert!(page.contains("&lt;b&gt;&quot;x&quot; onclick=&#x27;y&#x27;&lt;&#x2f;b&gt;"), "{page}");
        assert!(!page.contains("<b>"));
        assert!(page.contains("<h1>Not found</h1>"));
    }
}
