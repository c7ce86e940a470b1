// The admin's token from POST /rpc/login, kept for the browser session.
const KEY = 'billing.admin.token';

export const getToken = () => localStorage.getItem(KEY);
export const setToken = token => localStorage.setItem(KEY, token);
export const clearToken = () => localStorage.removeItem(KEY);

// The token's claims, read (not verified: the server does that) to know whom
// the panel shows as signed in and whether it is an admin token at all.
export function claims() {
    const token = getToken();
    if (!token) return null;
    try {
        const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
        return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (e) {
        return null;
    }
}
