// The saga console's one way to call the orchestrator: relative URLs (the page is at /console,
// so this also works behind a path-prefix proxy), JSON both ways, a timeout on every call, and
// problem+json answers turned into errors that carry their status and detail.

// A call the orchestrator does not answer in this time fails, so polling never stalls.
const FETCH_TIMEOUT_MS = 5000;

/** A problem+json answer (or another non-2xx). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? `${problem.detail} (${status})` : `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls `path` (relative to the page) with fetch `options`; resolves to the JSON answer. */
export async function request(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {
      cache: 'no-store',
      ...options,
      headers: { accept: 'application/json', ...(options.headers || {}) },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
  } catch (err) {
    throw new Error(err.name === 'TimeoutError' ? 'no answer from the orchestrator' : 'cannot reach the orchestrator');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}
