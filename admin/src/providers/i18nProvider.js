// English and Russian; the language follows the browser and can be switched
// in the app bar.  Every string lives in src/i18n/, none in components.
import polyglotI18nProvider from 'ra-i18n-polyglot';
import { resolveBrowserLocale } from 'react-admin';
import en from '../i18n/en';
import ru from '../i18n/ru';

const messages = { en, ru };
const browser = resolveBrowserLocale('en');

export const i18nProvider = polyglotI18nProvider(
    locale => messages[locale] || en,
    browser === 'ru' ? 'ru' : 'en',
    [
        { locale: 'en', name: 'English' },
        { locale: 'ru', name: 'Русский' },
    ],
    { allowMissing: true },
);
