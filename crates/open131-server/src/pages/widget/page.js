// The widget pages' own script (the pages work without it): groups the
// card number as it is typed, marks a number that fails the Luhn check, and
// once the card is saved or the payment has ended (or the widget cannot be
// used) tells the partner's page (the library) through postMessage, to the
// origin the library gave, never to any other.
(function () {
  'use strict';
  // A form is sent once: a second press while the first is on its way
  // (a double click on Pay) would find its token used.
  Array.prototype.forEach.call(document.forms, function (form) {
    form.addEventListener('submit', function (event) {
      if (form.getAttribute('data-sent')) {
        event.preventDefault();
        return;
      }
      form.setAttribute('data-sent', 'yes');
    });
  });
  var failure = document.getElementById('failure');
  if (failure) {
    var to = failure.getAttribute('data-origin');
    if (to && window.parent !== window) {
      window.parent.postMessage({ type: 'open131:error', message: failure.getAttribute('data-message') }, to);
    }
    return;
  }
  var link = document.getElementById('link');
  if (link) {
    var from = link.getAttribute('data-origin');
    if (from && window.parent !== window && link.getAttribute('data-state') === 'linked') {
      window.parent.postMessage({ type: 'open131:linked', status: 'linked' }, from);
    }
    return;
  }
  var paid = document.getElementById('paid');
  if (paid) {
    var back = paid.getAttribute('data-origin');
    if (back && window.parent !== window) {
      window.parent.postMessage({ type: 'open131:paid', status: paid.getAttribute('data-status'),
        session_id: paid.getAttribute('data-session-id'), message: paid.getAttribute('data-message') }, back);
    }
    return;
  }
  var result = document.getElementById('result');
  if (result) {
    var origin = result.getAttribute('data-origin');
    if (origin && window.parent !== window) {
      var kind = result.getAttribute('data-kind');
      var saved = kind === 'bank_account'
        ? { type: 'open131:tokenized', kind: kind, token: result.getAttribute('data-token'),
            masked_account: result.getAttribute('data-masked-account') }
        : { type: 'open131:tokenized', kind: kind, number_hash: result.getAttribute('data-number-hash'),
            brand: result.getAttribute('data-brand'), last4: result.getAttribute('data-last4') };
      window.parent.postMessage(saved, origin);
    }
    return;
  }
  var number = document.getElementById('number');
  if (!number) {
    return;
  }
  function luhn(digits) {
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = digits.charCodeAt(digits.length - 1 - i) - 48;
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }
  // The message shown beside the number while it fails the Luhn check.
  var live = document.createElement('p');
  live.className = 'error';
  live.id = 'number-live';
  live.setAttribute('role', 'alert');
  live.hidden = true;
  live.textContent = number.getAttribute('data-invalid');
  number.insertAdjacentElement('afterend', live);
  number.addEventListener('input', function () {
    var digits = number.value.replace(/\D/g, '').slice(0, 19);
    number.value = digits.replace(/(\d{4})(?=\d)/g, '$1 ');
    var wrong = digits.length >= 13 && !luhn(digits);
    number.setAttribute('aria-invalid', wrong ? 'true' : 'false');
    number.style.borderColor = wrong ? '#9b1c1c' : '';
    live.hidden = !wrong;
  });
  var expiry = document.getElementById('expiry');
  expiry.addEventListener('input', function () {
    // MM/YY as typed; a four-digit year (an autofill's MM/YYYY) is kept whole.
    var digits = expiry.value.replace(/\D/g, '').slice(0, 6);
    expiry.value = digits.length > 2 ? digits.slice(0, 2) + '/' + digits.slice(2) : digits;
  });
})();
