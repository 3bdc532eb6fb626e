-- API keys (hashes only) and the activity log (seed 004's user_activity).

CREATE TABLE public.api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  -- The key's first characters, shown to tell keys apart; not enough to use it.
  key_prefix text NOT NULL,
  -- SHA-256 of the key, hex; the key is shown once, when made.
  key_hash text NOT NULL,
  scopes text[] NOT NULL DEFAULT '{}',
  created_by uuid REFERENCES public.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
  CONSTRAINT api_keys_key_hash_check CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT api_keys_key_prefix_check CHECK (length(key_prefix) BETWEEN 4 AND 16),
  CONSTRAINT api_keys_expiry_check CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX api_keys_created_by_idx ON public.api_keys (created_by);
-- Keys that may still authenticate.
CREATE INDEX api_keys_live_idx ON public.api_keys (expires_at) WHERE revoked_at IS NULL;

CREATE TABLE public.activity_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- Null for the system (e.g. the provisioning) or a deleted user; `actor` still says who.
  user_id uuid REFERENCES public.users (id) ON DELETE SET NULL,
  actor text NOT NULL,
  action text NOT NULL,
  resource_type text,
  resource_id text,
  details jsonb NOT NULL DEFAULT '{}',
  ip_address inet,
  user_agent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT activity_log_details_check CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX activity_log_user_id_created_at_idx ON public.activity_log (user_id, created_at);
CREATE INDEX activity_log_created_at_idx ON public.activity_log (created_at);
CREATE INDEX activity_log_action_created_at_idx ON public.activity_log (action, created_at);
CREATE INDEX activity_log_resource_idx ON public.activity_log (resource_type, resource_id);
