// Русские строки панели (строки react-admin — из ra-language-russian; чего в
// нём нет, берётся из английского).
import englishMessages from 'ra-language-english';
import russianMessages from 'ra-language-russian';

const merge = (a, b) => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) {
        out[k] = v && typeof v === 'object' && !Array.isArray(v) ? merge(a[k] || {}, v) : v;
    }
    return out;
};

export default merge(merge(englishMessages, russianMessages), {
    billing: {
        app: { title: 'Биллинг: администрирование' },
        auth: { signed_out: 'Сеанс завершён. Войдите снова.' },
        common: { done: 'Готово', confirm: 'Подтвердить', yes: 'да', no: 'нет' },
        money: {
            input_help: 'В %{currency}, например %{example}',
            input_no_currency: 'Сначала выберите валюту',
            invalid: 'Введите сумму в %{currency}, например %{example}',
            decimals: 'В %{currency} после запятой не больше %{decimals} знаков',
            whole: 'В %{currency} нет дробных долей: введите целую сумму, например %{example}',
            no_currency: 'Сначала выберите валюту',
            no_such_currency: 'Биллинг не принимает оплату в %{currency}',
            loading: 'Список валют ещё загружается; повторите через мгновение',
            unknown: '%{amount} в минимальных единицах %{currency}',
        },
        status: {
            invoiced: 'счёт выставлен', pending: 'ожидает оплаты', paid: 'оплачен', canceled: 'отменён',
            expired: 'просрочен', failed: 'не прошёл', refund_pending: 'возврат в обработке', refunded: 'возвращён',
        },
        subscription: { active: 'активна', grace: 'льготный период', blocked: 'заблокирована' },
        dashboard: {
            title: 'Сводка', days: 'Последние %{days} дней', revenue: 'Выручка по дням',
            revenue_help: 'Оплаченные суммы по тарифам и валютам; дни по поясу %{tz}',
            totals: 'Оплачено и возвращено', no_data: 'За период платежей нет', currency: 'Валюта',
            paid: 'Оплачено', refunded: 'Возвращено', refund_rate: 'Доля возвратов', subscriptions: 'Подписки сейчас',
            active: 'Активные', grace: 'В льготном периоде', blocked: 'Заблокированные', new: 'Новые покупки',
            renewing: 'Продления', promo_codes: 'Самые используемые промокоды', delivery: 'Доставка и опрос провайдеров',
            pending: 'Сообщений в очереди', dead: 'Недоставленных сообщений', oldest_pending: 'Старейшее в очереди (с)',
            poll_due: 'Платежей к опросу провайдера', poll_waiting: 'Платежей ждут провайдера',
            renewals: 'Восстановленные автосписания',
            renewals_help: 'Сроки, автосписание за которые не прошло в этот период, и сколько из них оплатил повтор',
            renewals_failed: 'Не прошло', renewals_recovered: 'Восстановлено', recovery_rate: 'Доля восстановленных',
        },
        payments: {
            created_from: 'Создан с', created_to: 'Создан до',
            refund: 'Вернуть деньги', refund_title: 'Вернуть деньги за этот платёж?',
            refund_content: 'Деньги вернутся покупателю, купленные месяцы снимаются с подписки. Вне окна возврата сервер откажет.',
            cancel: 'Отменить платёж', cancel_title: 'Отменить этот платёж?',
            cancel_content: 'Счёт отменяется, страница оплаты закрывается.',
            mark_paid: 'Отметить оплаченным', mark_paid_title: 'Отметить платёж оплаченным?',
            reason: 'Причина (сохраняется в журнале)', history: 'История',
            automatic_only: 'Автосписания', automatic_attempt: 'автосписание, попытка %{attempt}',
            renewal_attempts: 'Попытки этого автосписания',
        },
        users: {
            subscriptions: 'Подписки и доступ', none: 'Подписок нет', status: 'Состояние',
            ends_at: 'Оплачено до', grace_ends_at: 'Льготный период до', access: 'Доступ',
            discount: 'Персональная скидка', payments: 'Платежи',
        },
        renewals: {
            auto_renew: 'Автопродление', on: 'включено', off: 'выключено', reason_label: 'Причина включения/выключения',
            next_charge: 'Следующее списание', card: 'Карта', failures: 'Неудачных списаний',
            charges: 'Автосписания', no_charges: 'Автосписаний нет',
            term: '%{tariff}: продление срока, истекающего %{end}', attempt: 'Попытка', amount: 'Сумма',
            failure_code: 'Ошибка', decline_code: 'Код отказа банка', at: 'Когда',
            switch_off: 'Выключить автопродление', switch_off_title: 'Выключить автопродление?',
            switch_off_content: 'Оплаченный срок сохраняется; следующего автосписания не будет. Записывается в журнал.',
            reason: {
                checkout: 'выбрано при оплате', buyer: 'покупателем', admin: 'администратором',
                charge_failed: 'последний повтор отклонён', authentication_failed: 'не пройдена проверка банка',
                method_revoked: 'покупатель отозвал сохранённую карту',
                not_completed: 'списание, требовавшее покупателя, не завершено', refunded: 'платёж возвращён',
                lapsed: 'подписка закончилась', tariff_unavailable: 'тариф больше не продаётся',
            },
        },
        tariffs: {
            code_help: 'Постоянный: строчные латинские буквы, цифры, _ и -', price: 'Цена в месяц',
            new_price: 'Новая цена в месяц', change_price: 'Изменить цену',
            change_price_content: 'Новые счета пойдут по новой цене; выставленные сохранят свою.',
            price_history: 'История цен',
        },
        delivery: {
            retry: 'Повторить', retry_title: 'Отправить сообщение снова?',
            retry_content: 'Сообщение снова встанет в очередь с новым счётом попыток.',
            discard: 'Отбросить', discard_title: 'Отбросить это сообщение?',
            discard_content: 'Оно не будет отправлено; сообщения за ним пойдут дальше.',
        },
        audit: { from: 'С', to: 'До', field: 'Поле', before: 'Было', after: 'Стало', changed: 'изменено' },
        errors: {
            http: 'Сервер ответил %{status}',
            too_many: 'Слишком много попыток',
            read_only: 'Этот список здесь не меняется',
            '28P01': 'Неверный e-mail или пароль',
            '28000': 'Вход не выполнен или запрещён',
            '22023': 'Недопустимое значение',
            '22P02': 'Недопустимое значение',
            '22007': 'Неверная дата',
            '22008': 'Дата вне допустимого диапазона',
            '23505': 'Уже существует',
            '23514': 'Значение не допускается',
            '55000': 'Невозможно в текущем состоянии',
            P0002: 'Не найдено',
            '42704': 'Не найдено',
            '42501': 'Нет прав',
        },
    },
    resources: {
        admin_payments: {
            name: 'Платёж |||| Платежи',
            fields: {
                id: 'Номер платежа', user_id: 'Пользователь', email: 'E-mail', tariff_code: 'Тариф',
                tariff_title: 'Название тарифа', months: 'Месяцев', monthly_price: 'Цена в месяц',
                list_price: 'Цена без скидок', personal_percent: 'Персональная, %', months_percent: 'За срок, %',
                promo_percent: 'Промокод, %', promo_code: 'Промокод', applied: 'Применённая скидка',
                discount: 'Скидка', total: 'Итого', currency: 'Валюта', status: 'Состояние', created_at: 'Создан',
                paid_at: 'Оплачен', closed_at: 'Закрыт', expires_at: 'Истекает', provider_payment_intent: 'Платёж у провайдера',
                provider_refund_id: 'Возврат у провайдера', automatic: 'Автосписание',
            },
        },
        admin_users: { name: 'Пользователь |||| Пользователи', fields: { id: 'Пользователь', email: 'E-mail', created_at: 'Известен с' } },
        admin_tariffs: {
            name: 'Тариф |||| Тарифы',
            fields: {
                code: 'Код', title: 'Название', description: 'Описание', monthly_price: 'Цена в месяц',
                currency: 'Валюта', active: 'В продаже', updated_at: 'Изменён',
            },
        },
        admin_personal_discounts: {
            name: 'Персональная скидка |||| Персональные скидки',
            fields: { user_id: 'Пользователь', percent: 'Процент', valid_until: 'Действует до', updated_at: 'Изменена' },
        },
        months_discounts: { name: 'Скидка за срок |||| Скидки за срок', fields: { months: 'От месяцев', percent: 'Процент' } },
        admin_promo_codes: {
            name: 'Промокод |||| Промокоды',
            fields: {
                code: 'Код', percent: 'Процент', valid_from: 'Действует с', valid_until: 'Действует до',
                tariff_code: 'Только для тарифа', redemptions: 'Использований', max_redemptions: 'Лимит',
                deleted_at: 'Удалён',
            },
        },
        outbox_dead: {
            name: 'Недоставленное сообщение |||| Доставка',
            fields: { id: 'Номер', kind: 'Вид', payload: 'Сообщение', attempts: 'Попыток', last_error: 'Последняя ошибка', created_at: 'Создано' },
        },
        admin_audit: {
            name: 'Запись журнала |||| Журнал действий',
            fields: { at: 'Когда', actor_name: 'Администратор', action: 'Действие', target: 'Объект' },
        },
        admin_payment_events: { fields: { at: 'Когда', from_status: 'Из', to_status: 'В', source: 'Источник' } },
        admin_price_history: { fields: { changed_at: 'Когда', old_price: 'Старая цена', new_price: 'Новая цена', changed_by: 'Кто' } },
    },
});
