-- The tenant's configuration: its security policy (one row), transactional email templates and feature flags.

CREATE TABLE public.security_policy (
  -- Always true: the table holds exactly one row.
  singleton boolean PRIMARY KEY DEFAULT true,
  -- minLength, requireUppercase, requireLowercase, requireNumbers, requireSymbols, preventReuse, expiryDays
  password_policy jsonb NOT NULL,
  -- timeoutSeconds, maxConcurrentSessions, extendOnActivity
  session jsonb NOT NULL,
  mfa_required boolean NOT NULL DEFAULT false,
  auth_methods text[] NOT NULL DEFAULT '{password}',
  -- Networks users may sign in from; empty: anywhere.
  allowed_ip_ranges cidr[] NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL,
  CONSTRAINT security_policy_singleton_check CHECK (singleton),
  CONSTRAINT security_policy_password_policy_check CHECK (jsonb_typeof(password_policy) = 'object'),
  CONSTRAINT security_policy_session_check CHECK (jsonb_typeof(session) = 'object'),
  CONSTRAINT security_policy_auth_methods_check CHECK (
    cardinality(auth_methods) > 0 AND auth_methods <@ ARRAY['password', '2fa', 'passkey', 'sso']
  )
);

CREATE TABLE public.email_templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- welcome, password_reset, verification, security_alert, and any the application adds
  key text NOT NULL,
  locale text NOT NULL DEFAULT 'en',
  subject text NOT NULL,
  body_text text NOT NULL,
  body_html text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT email_templates_key_locale_key UNIQUE (key, locale),
  CONSTRAINT email_templates_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,63}$')
);

CREATE TABLE public.feature_flags (
  key text PRIMARY KEY,
  enabled boolean NOT NULL DEFAULT false,
  config jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT feature_flags_key_check CHECK (key ~ '^[a-zA-Z][a-zA-Z0-9_.-]{0,99}$'),
  CONSTRAINT feature_flags_config_check CHECK (jsonb_typeof(config) = 'object')
);
