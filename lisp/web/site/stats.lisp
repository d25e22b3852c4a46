;;;; stats.lisp — /stats: mmstatd's counters, live.  The page lists the counters matching a
;;;; pattern and refreshes them every second from /stats/data (JSON); each counter ticked for
;;;; charting gets an SVG chart (/stats/chart.svg, written by the template engine) of the
;;;; values this server saw for it, one sample per poll (the last 60).  mmstatd is found
;;;; through MMSTAT_DIR (make run exports it), else /run/mmstatd.

(in-package :crow.site)

(defvar *stats-history* (make-hash-table :test 'equal)
  "Key -> list of (UNIX-TIME . VALUE), newest first, at most *stats-samples*.")
(defvar *stats-lock* (mp:make-lock :name "crow.site stats"))
(defparameter *stats-samples* 60)
(defparameter *stats-max-keys* 500 "Counters answered per poll at most.")

(defun stats-report (pattern)
  "Returns (values ENTRIES ERROR): mmstat-report's entries for PATTERN, or NIL and a message."
  (handler-case
      (with-mmstat (h)
        (values (let ((r (mmstat-report h pattern)))
                  (subseq r 0 (min (length r) *stats-max-keys*)))
                nil))
    (crow-error (e) (values nil (princ-to-string e)))))

(defun record-samples (entries)
  (let ((now (unix-time)))
    (mp:with-lock (*stats-lock*)
      (dolist (e entries)
        (when (integerp (second e))
          (let ((h (gethash (first e) *stats-history*)))
            (unless (and h (= (car (first h)) now) (= (cdr (first h)) (second e)))
              (push (cons now (second e)) h)
              (when (> (length h) *stats-samples*) (setf h (subseq h 0 *stats-samples*)))
              (setf (gethash (first e) *stats-history*) h))))))))

(defun json-string (s)
  (with-output-to-string (o)
    (write-char #\" o)
    (loop for c across s
          do (case c
               (#\" (write-string "\\\"" o))
               (#\\ (write-string "\\\\" o))
               (t (if (< (char-code c) 32)
                      (format o "\\u~4,'0x" (char-code c))
                      (write-char c o)))))
    (write-char #\" o)))

(defun stats-data (req)
  (http-let (req (pattern :string "*" :from :get))
    (multiple-value-bind (entries error) (stats-report (if (string= pattern "") "*" pattern))
      (record-samples entries)
      (respond req
               (with-output-to-string (o)
                 (format o "{\"error\":~a,\"counters\":[" (if error (json-string error) "null"))
                 (loop for (key value created modified persistent) in entries
                       for first = t then nil
                       do (format o "~:[,~;~][~a,~a,~:[\"v\"~;\"p\"~],~d,~d]" first
                                  (json-string key)
                                  (if (integerp value) value (json-string (format nil "=~a" value)))
                                  persistent created modified))
                 (format o "]}"))
               :content-type "application/json"
               :headers '(("Cache-Control" . "no-store"))))))

(defun chart-points (samples width height)
  "Returns the polyline points (a string) of SAMPLES ((TIME . VALUE) newest first) scaled
into WIDTH x HEIGHT, and the minimum and maximum values."
  (let* ((s (reverse samples))
         (lo (reduce #'min s :key #'cdr)) (hi (reduce #'max s :key #'cdr))
         (t0 (car (first s))) (t1 (car (car (last s))))
         (span (max 1 (- t1 t0))) (range (max 1 (- hi lo))))
    (values (format nil "~{~a~^ ~}"
                    (loop for (tm . v) in s
                          collect (format nil "~,1f,~,1f"
                                          (* width (/ (- tm t0) span))
                                          (- height (* (- height 4) (/ (- v lo) range)) 2))))
            lo hi)))

(defun stats-chart (req)
  (http-let (req (key :string "" :from :get))
    (let ((samples (mp:with-lock (*stats-lock*) (copy-list (gethash key *stats-history*)))))
      (multiple-value-bind (points lo hi)
          (if samples (chart-points samples 300 80) (values "" 0 0))
        (respond req
                 (html-octets (:mode :xhtml)
                   (:svg :xmlns "http://www.w3.org/2000/svg" :width 320 :height 100
                         :viewBox "0 0 320 100" :class "chart"
                     (:rect :x 0 :y 0 :width 320 :height 100 :fill "#fff" :stroke "#aaa")
                     (:text :x 4 :y 12 :font-size 10 :fill "#333" key)
                     (:when samples
                       (:polyline :fill "none" :stroke "#263238" :stroke-width 2
                                  :transform "translate(10,16)" :points points)
                       (:text :x 4 :y 96 :font-size 9 :fill "#666"
                              "min " lo " max " hi " (" (length samples) " samples)"))))
                 :content-type "image/svg+xml"
                 :headers '(("Cache-Control" . "no-store")))))))

(defparameter *stats-script* "
var pat=document.getElementById('pattern'), tbody=document.getElementById('rows'),
    err=document.getElementById('error'), charts=document.getElementById('charts'), ticked={};
function esc(s){return String(s).replace(/[&<>\"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','\"':'&quot;'}[c];});}
function poll(){
  fetch('/stats/data?pattern='+encodeURIComponent(pat.value||'*')).then(function(r){return r.json();}).then(function(d){
    err.textContent=d.error||'';
    var html='';
    d.counters.forEach(function(c){
      html+='<tr data-key=\"'+esc(c[0])+'\"><td><input type=checkbox class=chart-toggle'+(ticked[c[0]]?' checked':'')+
            '></td><td class=key>'+esc(c[0])+'</td><td class=value>'+esc(c[1])+'</td><td>'+c[2]+'</td><td>'+
            new Date(c[4]*1000).toLocaleTimeString()+'</td></tr>';});
    tbody.innerHTML=html;
    document.getElementById('count').textContent=d.counters.length;
    var now=Date.now(), h='';
    Object.keys(ticked).forEach(function(k){h+='<img alt=\"'+esc(k)+'\" src=\"/stats/chart.svg?key='+encodeURIComponent(k)+'&t='+now+'\">';});
    charts.innerHTML=h;
  }).catch(function(e){err.textContent=String(e);});
}
tbody.addEventListener('change',function(e){
  var k=e.target.closest('tr').getAttribute('data-key');
  if(e.target.checked) ticked[k]=1; else delete ticked[k]; poll();});
document.getElementById('form').addEventListener('submit',function(e){e.preventDefault();poll();});
poll(); setInterval(poll,1000);
")

(defun stats-main (req)
  (http-let (req (pattern :string "*" :from :get))
    (site-page (req "Statistics")
      (:p "Counters in mmstatd, refreshed every second.  Tick a counter to chart its recent "
          "values.  Change them with " (:code "mmstat update p KEY%DELTA") ".")
      (:form :id "form" :method "get" :action "/stats"
        (:p "Pattern " (:input :name "pattern" :id "pattern" :value pattern)
            " " (:button :type "submit" "Show") " "
            (:span :id "count" "0") " counter(s) " (:span :id "error" :style "color:#a00")))
      (:table :class "grid" :id "counters"
        (:thead (:tr (:th "chart") (:th "key") (:th "value") (:th "p/v") (:th "modified")))
        (:tbody :id "rows"))
      (:div :id "charts")
      (:script (:raw *stats-script*)))))

(define-handler stats (req)
  (let ((path (request-path req)))
    (cond ((or (string= path "/stats") (string= path "/stats/")) (stats-main req))
          ((string= path "/stats/data") (stats-data req))
          ((string= path "/stats/chart.svg") (stats-chart req))
          (t (respond-error req 404)))))
