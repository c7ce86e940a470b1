// English strings of the panel (react-admin's own from ra-language-english).
import englishMessages from 'ra-language-english';

export default {
    ...englishMessages,
    billing: {
        app: { title: 'Billing admin' },
        auth: { signed_out: 'You were signed out. Sign in again.' },
        common: { done: 'Done', confirm: 'Confirm', yes: 'yes', no: 'no', minor_units: 'In minor units (kopecks, cents)' },
        status: {
            invoiced: 'invoiced', pending: 'pending', paid: 'paid', canceled: 'canceled', expired: 'expired',
            failed: 'failed', refund_pending: 'refund pending', refunded: 'refunded',
        },
        subscription: { active: 'active', grace: 'in grace', blocked: 'blocked' },
        dashboard: {
            title: 'Dashboard', days: 'Last %{days} days', revenue: 'Revenue per day',
            minor_units: 'Paid amounts in minor units, by tariff and currency; days in %{tz}',
            totals: 'Paid and refunded', no_data: 'No payments in this period', currency: 'Currency',
            paid: 'Paid', refunded: 'Refunded', refund_rate: 'Refund rate', subscriptions: 'Subscriptions now',
            active: 'Active', grace: 'In grace', blocked: 'Blocked', new: 'New purchases', renewing: 'Renewals',
            promo_codes: 'Most used promo codes', delivery: 'Delivery and Stripe polling',
            pending: 'Messages pending', dead: 'Dead messages', oldest_pending: 'Oldest pending (s)',
            poll_due: 'Payments due for a Stripe poll', poll_waiting: 'Payments waiting for Stripe',
        },
        payments: {
            created_from: 'Created from', created_to: 'Created before',
            refund: 'Refund', refund_title: 'Refund this payment?',
            refund_content: 'The money goes back to the buyer and the months it bought are taken off the subscription. The server refuses outside the refund window.',
            cancel: 'Cancel payment', cancel_title: 'Cancel this payment?',
            cancel_content: 'The invoice is canceled and its checkout closed.',
            mark_paid: 'Mark paid', mark_paid_title: 'Mark this payment paid?', reason: 'Reason (kept in the audit)',
            history: 'History',
        },
        users: {
            subscriptions: 'Subscriptions and access', none: 'No subscriptions', status: 'Status',
            ends_at: 'Paid until', grace_ends_at: 'Grace until', access: 'Access',
            discount: 'Personal discount', payments: 'Payments',
        },
        tariffs: {
            code_help: 'Permanent: lower-case letters, digits, _ and -', price: 'Monthly price',
            new_price: 'New monthly price (minor units)', change_price: 'Change price',
            change_price_content: 'New invoices use the new price; existing ones keep theirs.',
            price_history: 'Price history',
        },
        delivery: {
            retry: 'Retry', retry_title: 'Retry this message?',
            retry_content: 'It is queued again with a fresh round of attempts.',
            discard: 'Discard', discard_title: 'Discard this message?',
            discard_content: 'It is never sent; the messages queued behind it move on.',
        },
        audit: { from: 'From', to: 'Before', field: 'Field', before: 'Before', after: 'After', changed: 'changed' },
        errors: {
            http: 'The server answered %{status}',
            too_many: 'Too many attempts',
            read_only: 'This list cannot be changed here',
            '28P01': 'Wrong e-mail or password',
            '28000': 'Not signed in or not allowed',
            '22023': 'Invalid value',
            '22P02': 'Invalid value',
            '22007': 'Invalid date',
            '22008': 'Date out of range',
            '23505': 'Already exists',
            '23514': 'Value not allowed',
            '55000': 'Not possible in the current state',
            P0002: 'Not found',
            '42704': 'Not found',
            '42501': 'Not allowed',
        },
    },
    resources: {
        admin_payments: {
            name: 'Payment |||| Payments',
            fields: {
                id: 'Payment id', user_id: 'User id', email: 'E-mail', tariff_code: 'Tariff', tariff_title: 'Tariff title',
                months: 'Months', monthly_price: 'Monthly price', list_price: 'List price',
                personal_percent: 'Personal %', months_percent: 'Months %', promo_percent: 'Promo %',
                promo_code: 'Promo code', applied: 'Discount applied', discount: 'Discount', total: 'Total',
                currency: 'Currency', status: 'Status', created_at: 'Created', paid_at: 'Paid at',
                closed_at: 'Closed at', expires_at: 'Expires at', provider_payment_intent: 'Stripe payment',
                provider_refund_id: 'Stripe refund',
            },
        },
        admin_users: { name: 'User |||| Users', fields: { id: 'User id', email: 'E-mail', created_at: 'Known since' } },
        admin_tariffs: {
            name: 'Tariff |||| Tariffs',
            fields: {
                code: 'Code', title: 'Title', description: 'Description', monthly_price: 'Monthly price',
                currency: 'Currency', active: 'On sale', updated_at: 'Changed',
            },
        },
        admin_personal_discounts: {
            name: 'Personal discount |||| Personal discounts',
            fields: { user_id: 'User id', percent: 'Percent', valid_until: 'Valid until', updated_at: 'Changed' },
        },
        months_discounts: { name: 'Months discount |||| Months discounts', fields: { months: 'From months', percent: 'Percent' } },
        admin_promo_codes: {
            name: 'Promo code |||| Promo codes',
            fields: {
                code: 'Code', percent: 'Percent', valid_from: 'Valid from', valid_until: 'Valid until',
                tariff_code: 'Only for tariff', redemptions: 'Redemptions', max_redemptions: 'Limit',
                deleted_at: 'Deleted',
            },
        },
        outbox_dead: {
            name: 'Dead message |||| Delivery',
            fields: { id: 'Id', kind: 'Kind', payload: 'Message', attempts: 'Attempts', last_error: 'Last error', created_at: 'Created' },
        },
        admin_audit: {
            name: 'Audit entry |||| Audit log',
            fields: { at: 'When', actor_name: 'Admin', action: 'Action', target: 'Target' },
        },
        admin_payment_events: { fields: { at: 'When', from_status: 'From', to_status: 'To', source: 'Source' } },
        admin_price_history: { fields: { changed_at: 'When', old_price: 'Old price', new_price: 'New price', changed_by: 'By' } },
    },
};
