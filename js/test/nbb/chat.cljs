;; A Sente-style program in nbb (ClojureScript on Node.js) with the
;; sente-lite JavaScript client: the events a Sente program would send with
;; `chsk-send!`, the handlers its `ch-recv` loop would run, and a request
;; with a reply (Sente's `?reply-fn`). Run with
;;   npx nbb chat.cljs ws://127.0.0.1:3000/ws?name=nbb
(ns chat
  (:require ["sente-lite" :refer [Client]]
            ["ws$default" :as WebSocket]
            [promesa.core :as p]))

(def url (or (first *command-line-args*) "ws://127.0.0.1:3000/ws?name=nbb"))

(def client (Client. url #js {:WebSocket WebSocket}))

;; Sente: (defmethod event-msg-handler :test/news [{:keys [?data]}] ...)
(def news (p/deferred))
(.on client "test/news" (fn [data _info] (p/resolve! news (.-text data))))

;; Sente: a server request answered through `?reply-fn`.
(.on client "test/question" (fn [data _info] (str "nbb answers " (.-text data))))

(p/let [_ (.connect client)
        ;; Sente: (chsk-send! [:test/echo {:text "..."}] 5000 (fn [reply] ...))
        echoed (.request client "test/echo" #js {:text "hello from nbb"} #js {:timeoutMs 5000})
        _ (println "echoed:" (.-text echoed) "as" (.-userId client))
        ;; Sente: (chsk-send! [:test/push {:text "..."}]), no reply
        _ (.send client "test/push" #js {:text "pushed to me"})
        pushed news
        _ (println "news:" pushed)
        answer (.request client "test/ask" #js {:text "ready?"})
        _ (println "asked:" answer)]
  (.disconnect client))
