// Every request to the API: the admin's token, and the server's error (its
// message and hint) turned into what the admin reads, in their language when
// the panel knows the error's code.
import { fetchUtils, HttpError } from 'react-admin';
import { i18nProvider } from './i18nProvider';
import { getToken } from './token';

export const API = '/api';

export function describeError(status, body) {
    const t = i18nProvider.translate;
    const code = body && body.code;
    // 429 (a locked sign-in, nginx's rate limit) says more than its SQLSTATE.
    const key = status === 429 ? 'billing.errors.too_many' : code && `billing.errors.${code}`;
    const known = key ? t(key, { _: '' }) : '';
    const server = (body && body.message) || t('billing.errors.http', { status });
    // The code's meaning in the admin's language first, then the server's own
    // words (unless they say the same).
    const message = !known || known.toLowerCase() === server.toLowerCase() ? known || server : `${known}: ${server}`;
    const hint = (body && body.hint) || '';
    return hint ? `${message}. ${hint}` : message;
}

export async function httpClient(url, options = {}) {
    const headers = new Headers(options.headers || { Accept: 'application/json' });
    const token = getToken();
    if (token) headers.set('Authorization', `Bearer ${token}`);
    const response = await fetch(url, { ...options, headers });
    const text = await response.text();
    let json;
    try {
        json = text ? JSON.parse(text) : undefined;
    } catch (e) {
        json = undefined;
    }
    if (response.status < 200 || response.status >= 300) {
        throw new HttpError(describeError(response.status, json), response.status, json);
    }
    return { status: response.status, headers: response.headers, body: text, json };
}

// POST /rpc/<name> with named arguments; the function's result.
export async function rpc(name, args = {}) {
    const { json } = await httpClient(`${API}/rpc/${name}`, {
        method: 'POST',
        headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
        body: JSON.stringify(args),
    });
    return json;
}

export { fetchUtils };
