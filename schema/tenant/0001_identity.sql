-- The tenant's users and what they may do: application roles (seed 000's Admin/Member/Viewer with scopes),
-- users, and one-time invitations. Every tenant database starts from this template.

CREATE TABLE public.app_roles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  -- e.g. {read, write, delete, admin}
  scopes text[] NOT NULL DEFAULT '{}',
  -- The seeded roles; the application may refuse to delete them.
  is_system boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT app_roles_name_key UNIQUE (name),
  CONSTRAINT app_roles_name_check CHECK (length(name) BETWEEN 1 AND 100),
  CONSTRAINT app_roles_scopes_check CHECK (array_position(scopes, NULL) IS NULL)
);

CREATE TABLE public.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  status text NOT NULL DEFAULT 'invited',
  role_id uuid NOT NULL REFERENCES public.app_roles (id),
  first_name text,
  last_name text,
  -- Set when the user accepts an invitation; a one-way hash, never the password.
  password_hash text,
  mfa_enabled boolean NOT NULL DEFAULT false,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_status_check CHECK (status IN ('invited', 'active', 'disabled')),
  CONSTRAINT users_email_check CHECK (position('@' IN email) > 1 AND length(email) <= 254),
  CONSTRAINT users_active_password_check CHECK (status <> 'active' OR password_hash IS NOT NULL)
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX users_email_key ON public.users (lower(email));
CREATE INDEX users_role_id_idx ON public.users (role_id);
CREATE INDEX users_status_idx ON public.users (status);

CREATE TABLE public.invitations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  -- SHA-256 of the one-time token, hex; the token itself is only ever with the invitee.
  token_hash text NOT NULL,
  expires_at timestamptz NOT NULL,
  accepted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text NOT NULL,
  CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
  CONSTRAINT invitations_token_hash_check CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT invitations_expiry_check CHECK (expires_at > created_at),
  CONSTRAINT invitations_accepted_check CHECK (accepted_at IS NULL OR accepted_at >= created_at)
);
CREATE INDEX invitations_user_id_idx ON public.invitations (user_id);
-- Open invitations, for the expiry sweep.
CREATE INDEX invitations_open_expires_at_idx ON public.invitations (expires_at) WHERE accepted_at IS NULL;
