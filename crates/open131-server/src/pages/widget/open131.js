// open131's widget library: a partner's page includes it from the open131
// server and shows a widget with a public token its own server asked for
// (POST /api/v1/token). The widget is a page of the open131 server in an
// iframe: the card is typed there, so the partner's page never sees it.
//
//   <div id="card"></div>
//   <script src="https://<open131>/widget/open131.js"></script>
//   <script>
//     const widget = Open131.tokenizeWidget({
//       publicToken: '<public_token>', container: document.getElementById('card'), locale: 'en',
//       // method: 'bank_account' for a Russian bank account (BIK and number) instead of a card
//       onSuccess: (saved) => { /* saved.type 'card': number_hash, brand, last4;
//                                   'bank_account': token, masked_account */ },
//       onError: (error) => { /* error.message */ },
//       onClose: () => {},
//     });
//     // widget.close() removes it.
//
//     // The payment form (a public token with acquiring_widget): the customer pays the
//     // session in the frame, 3-D Secure included; the end comes to the callbacks.
//     Open131.paymentForm({
//       publicToken: '<public_token>', container: document.getElementById('pay'), locale: 'en',
//       onSuccess: (payment) => { /* payment.session_id, payment.status 'succeeded' */ },
//       onError: (error) => { /* error.message; error.session_id once a payment has failed */ },
//     });
//
//     // The self-employed linking widget (a public token with self_employed_widget): the
//     // person sends the linking request and confirms it in the tax service's app.
//     Open131.selfEmployedWidget({
//       publicToken: '<public_token>', container: document.getElementById('link'), locale: 'en',
//       onSuccess: (link) => { /* link.status 'linked' (the partner's server checks with npd/check) */ },
//     });
//   </script>
(function () {
  'use strict';
  var script = document.currentScript;
  var base = new URL(script.src).origin;

  function mount(kind, options) {
    if (!options || !options.publicToken || !options.container) {
      throw new Error('Open131: publicToken and container are required');
    }
    var frame = document.createElement('iframe');
    var query = '?origin=' + encodeURIComponent(window.location.origin);
    if (options.locale) {
      query += '&locale=' + encodeURIComponent(options.locale);
    }
    if (options.method) {
      query += '&method=' + encodeURIComponent(options.method);
    }
    frame.src = base + '/widget/' + kind + '/' + encodeURIComponent(options.publicToken) + query;
    frame.title = 'open131 ' + kind;
    frame.style.border = '0';
    frame.style.width = '100%';
    frame.style.height = options.height || ({ pay: '760px', 'self-employed': '600px' }[kind] || '460px');
    options.container.appendChild(frame);

    function onMessage(event) {
      if (event.origin !== base || event.source !== frame.contentWindow) {
        return;
      }
      var data = event.data || {};
      if (data.type === 'open131:tokenized' && options.onSuccess) {
        options.onSuccess(data.kind === 'bank_account'
          ? { type: 'bank_account', token: data.token, masked_account: data.masked_account }
          : { type: 'card', number_hash: data.number_hash, brand: data.brand, last4: data.last4 });
      } else if (data.type === 'open131:linked' && options.onSuccess) {
        options.onSuccess({ type: 'self_employed', status: data.status });
      } else if (data.type === 'open131:paid' && data.status === 'succeeded' && options.onSuccess) {
        options.onSuccess({ type: 'payment', status: data.status, session_id: data.session_id });
      } else if (data.type === 'open131:paid' && options.onError) {
        options.onError({ message: data.message, session_id: data.session_id });
      } else if (data.type === 'open131:error' && options.onError) {
        options.onError({ message: data.message });
      }
    }
    window.addEventListener('message', onMessage);
    return {
      close: function () {
        window.removeEventListener('message', onMessage);
        frame.remove();
        if (options.onClose) {
          options.onClose();
        }
      },
    };
  }

  window.Open131 = {
    tokenizeWidget: function (options) {
      return mount('tokenize', options);
    },
    paymentForm: function (options) {
      return mount('pay', options);
    },
    selfEmployedWidget: function (options) {
      return mount('self-employed', options);
    },
  };
})();
