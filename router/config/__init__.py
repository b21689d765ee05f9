"""The one service configuration file (``tocsin serve --config FILE``), section by section.

:mod:`router.config.load` reads it (defaults, then the YAML file, then ``TOCSIN_*``
environment variables) and words its errors; :mod:`router.config.service` is the whole
model, each section in its own module: ``smtp``, ``http`` (``webhook``, ``api``),
``dispatch``, ``log``, ``incidents``, ``instance``, ``retention``, ``backpressure``, ``kafka``,
``channels`` (``sns``, ``webpush``), ``acks`` (acknowledgement links), ``costs``
(prices per message, for ``tocsin audiences plan``). Every model
is :class:`router.strict.Strict`.
"""

from router.config.acks import AcksConfig
from router.config.backpressure import BackpressureConfig
from router.config.channels import SnsAudienceConfig, SnsConfig, SnsInboundConfig, WebPushConfig
from router.config.costs import CostsConfig
from router.config.dispatch import DispatchConfig, LaneConfig, LanesConfig
from router.config.http import (
    SCOPES,
    ApiConfig,
    ApiTokenConfig,
    BasicAuthConfig,
    Scope,
    WebhookConfig,
)
from router.config.incidents import IncidentsConfig
from router.config.instance import InstanceConfig
from router.config.kafka import (
    MESSAGE_FORMATS,
    KafkaConfig,
    KafkaLabelsConfig,
    KafkaPublishConfig,
    KafkaSaslConfig,
    KafkaSslConfig,
    MessageFormat,
)
from router.config.limits import MemoryConfig, TemplatesConfig
from router.config.load import (
    ENV_PREFIX,
    NON_CONFIG_ENV,
    env_names,
    load_command_config,
    load_config,
)
from router.config.log import LogConfig
from router.config.retention import RetentionConfig
from router.config.service import ServiceConfig, parse_listen
from router.config.smtp import SmtpConfig

__all__ = [
    "ENV_PREFIX",
    "MESSAGE_FORMATS",
    "NON_CONFIG_ENV",
    "SCOPES",
    "AcksConfig",
    "ApiConfig",
    "ApiTokenConfig",
    "BackpressureConfig",
    "BasicAuthConfig",
    "CostsConfig",
    "DispatchConfig",
    "IncidentsConfig",
    "InstanceConfig",
    "KafkaConfig",
    "KafkaLabelsConfig",
    "KafkaPublishConfig",
    "KafkaSaslConfig",
    "KafkaSslConfig",
    "LaneConfig",
    "LanesConfig",
    "LogConfig",
    "MemoryConfig",
    "MessageFormat",
    "RetentionConfig",
    "Scope",
    "ServiceConfig",
    "SmtpConfig",
    "SnsAudienceConfig",
    "SnsConfig",
    "SnsInboundConfig",
    "TemplatesConfig",
    "WebPushConfig",
    "WebhookConfig",
    "env_names",
    "load_command_config",
    "load_config",
    "parse_listen",
]
