-- Argo CD health check for modeldeploy.io/ModelDeployment.
--
-- Install under argocd-cm as
--   resource.customizations.health.modeldeploy.io_ModelDeployment
-- (docs/gitops.md has the full snippet). Argo CD runs it with the object in the
-- global `obj` and reads {status=..., message=...} from the returned table.
--
-- Verdicts, first match wins:
--   1. no status / no conditions yet             -> Progressing
--   2. status.observedGeneration != generation   -> Progressing (operator has not seen the new spec)
--   3. Stalled=True                              -> Degraded    ("reason: message" of Stalled)
--   4. Reconciling=True                          -> Progressing (rollout under way, even if probes fail)
--   5. ModelHealthy=False                        -> Degraded    ("reason: message" of ModelHealthy)
--   6. Drifted=True, reason VersionDrift         -> Degraded    (replicas serve another model version
--                                                                and the operator is not fixing it)
--   7. Ready=True and current                    -> Healthy     (DataDrift is named in the message)
--   8. anything else                             -> Progressing (Ready's "reason: message")
--
-- Written for Lua 5.1 (gopher-lua, which Argo CD embeds) with only the libraries Argo CD
-- opens by default (base, table, package, a reduced os): no string or math library, so no
-- string.format and no string methods; `..`, tostring and ipairs are all it needs.

local function condition(conditions, kind)
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == kind then
      return c
    end
  end
  return nil
end

local function is(c, status)
  return c ~= nil and c.status == status
end

-- "reason: message", or whichever of the two is set.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  if message ~= "" then
    return message
  end
  return fallback
end

-- A generation as text: JSON numbers are whole, and tostring prints a whole number without a
-- fraction in Lua 5.1 (gopher-lua) and for the integers Lua 5.3+ reads.
local function int(n)
  return tostring(n)
end

local function verdict(status, message)
  return { status = status, message = message }
end

local function health(o)
  local metadata = o.metadata or {}
  local generation = metadata.generation
  local st = o.status
  if type(st) ~= "table" or type(st.conditions) ~= "table" or #st.conditions == 0 then
    return verdict("Progressing", "Waiting for the modeldeploy operator to report status")
  end

  if generation ~= nil and st.observedGeneration ~= generation then
    local seen = "none"
    if st.observedGeneration ~= nil then
      seen = int(st.observedGeneration)
    end
    return verdict("Progressing", "Waiting for the operator to observe generation " .. int(generation)
      .. " (observed: " .. seen .. ")")
  end

  local conditions = st.conditions
  local stalled = condition(conditions, "Stalled")
  if is(stalled, "True") then
    return verdict("Degraded", describe(stalled, "Stalled"))
  end

  local reconciling = condition(conditions, "Reconciling")
  if is(reconciling, "True") then
    return verdict("Progressing", describe(reconciling, "Reconciling"))
  end

  local modelHealthy = condition(conditions, "ModelHealthy")
  if is(modelHealthy, "False") then
    return verdict("Degraded", describe(modelHealthy, "Model is not healthy"))
  end

  local drifted = condition(conditions, "Drifted")
  local drifting = is(drifted, "True")
  if drifting and drifted.reason == "VersionDrift" then
    return verdict("Degraded", describe(drifted, "VersionDrift"))
  end

  local ready = condition(conditions, "Ready")
  -- A Ready condition written for an older generation says nothing about this one.
  local readyCurrent = ready ~= nil and (ready.observedGeneration == nil or generation == nil
    or ready.observedGeneration == generation)
  if is(ready, "True") and readyCurrent then
    local message = describe(ready, "ModelDeployment is ready")
    if drifting then
      message = message .. "; " .. describe(drifted, "drift detected")
    end
    return verdict("Healthy", message)
  end
  if ready ~= nil and not readyCurrent then
    return verdict("Progressing", "Waiting for the Ready condition of generation " .. int(generation))
  end
  return verdict("Progressing", describe(ready, "Waiting for the Ready condition"))
end

return health(obj)
