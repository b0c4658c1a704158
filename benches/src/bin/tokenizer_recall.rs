//! `vledger-tokenizer-recall`: the catalog's Chinese text analysis (bigrams and unigrams, a
//! run of characters looked up as the phrase of its bigrams) against jieba's dictionary
//! segmentation (`cut_for_search` for listings, `cut` for queries, every query word
//! required), on recall and precision for Chinese queries over listing titles.
//!
//! What a person searching the catalog for 质谱 expects is every listing whose text holds
//! 质谱: the relevant listings of a query are those that contain it. Prints, per query and in
//! all, what each analysis finds, as JSON.

use serde_json::json;
use vledger_search::tokenizer::{index_tokens, query_tokens, runs};

/// Listing texts of the kind agencies write: instruments, tests, services, with words that a
/// dictionary cuts in more than one way.
const LISTINGS: &[&str] = &[
    "高分辨质谱仪测试服务",
    "液相色谱质谱联用仪分析",
    "气相色谱-质谱联用检测",
    "电感耦合等离子体质谱元素分析",
    "基质辅助激光解吸电离飞行时间质谱",
    "扫描电子显微镜形貌观察",
    "透射电镜样品制备与拍摄",
    "场发射扫描电镜能谱分析",
    "X射线衍射物相分析",
    "X射线光电子能谱测试",
    "核磁共振波谱仪测试",
    "傅里叶变换红外光谱分析",
    "拉曼光谱检测服务",
    "紫外可见分光光度计测试",
    "原子吸收光谱仪元素测定",
    "汽车零部件电磁兼容检测",
    "新能源汽车动力电池安全检测",
    "整车碰撞试验与评价",
    "汽车电子可靠性测试",
    "电磁兼容EMC整改与认证",
    "集成电路失效分析",
    "芯片封装可靠性试验",
    "半导体晶圆缺陷检测",
    "印制电路板可焊性测试",
    "实验动物饲养与繁育",
    "小鼠基因敲除模型构建",
    "基因测序与生物信息分析",
    "高通量测序文库构建",
    "细胞培养与药物筛选",
    "医疗器械生物相容性评价",
    "金属材料力学性能测试",
    "高分子材料热分析",
    "复合材料疲劳试验",
    "建筑材料防火性能检测",
    "水质重金属检测",
    "土壤有机污染物分析",
    "食品农药残留检测",
    "环境空气质量监测",
    "工业软件测评服务",
    "大数据分析平台租用",
    "知识产权专利检索分析",
    "科技成果评价与转化",
    "技术转移与成果孵化",
    "众创空间工位租赁",
    "科技企业孵化器入驻服务",
];

/// Queries a person types, each a word or a short phrase.
const QUERIES: &[&str] = &[
    "质谱",
    "质谱仪",
    "色谱",
    "联用",
    "电镜",
    "扫描电镜",
    "能谱",
    "光谱",
    "谱仪",
    "电磁兼容",
    "兼容",
    "汽车",
    "零部件",
    "电池",
    "可靠性",
    "失效分析",
    "晶圆",
    "测序",
    "基因",
    "材料",
    "检测",
    "分析",
    "成果",
    "孵化",
    "孵化器",
];

/// Whether the listing's tokens hold the query's tokens as a phrase: each at the position after
/// the one before (the index's rule).
fn bigrams_match(listing: &[(usize, String)], query: &[String]) -> bool {
    listing.iter().any(|(start, first)| {
        first == &query[0]
            && query[1..].iter().enumerate().all(|(i, token)| {
                listing
                    .iter()
                    .any(|(position, t)| *position == start + i + 1 && t == token)
            })
    })
}

fn main() {
    let jieba = jieba_rs::Jieba::new();
    let indexed: Vec<Vec<(usize, String)>> = LISTINGS.iter().map(|l| index_tokens(l)).collect();
    let segmented: Vec<Vec<&str>> = LISTINGS
        .iter()
        .map(|l| {
            jieba
                .cut_for_search(l, true)
                .into_iter()
                .map(|t| t.word)
                .collect()
        })
        .collect();
    let mut rows = Vec::new();
    let (mut relevant, mut found_bigram, mut found_jieba) = (0, 0, 0);
    let (mut false_bigram, mut false_jieba) = (0, 0);
    for query in QUERIES {
        let truth: Vec<bool> = LISTINGS.iter().map(|l| l.contains(query)).collect();
        let tokens: Vec<String> = runs(query).iter().flat_map(query_tokens).collect();
        let by_bigrams: Vec<bool> = indexed.iter().map(|l| bigrams_match(l, &tokens)).collect();
        let words: Vec<&str> = jieba
            .cut(query, true)
            .into_iter()
            .map(|t| t.word)
            .filter(|w| !w.trim().is_empty())
            .collect();
        let by_jieba: Vec<bool> = segmented
            .iter()
            .map(|l| words.iter().all(|w| l.contains(w)))
            .collect();
        let count = |found: &[bool], want: bool| {
            found
                .iter()
                .zip(&truth)
                .filter(|(f, t)| **f && **t == want)
                .count()
        };
        let truth_count = truth.iter().filter(|t| **t).count();
        relevant += truth_count;
        found_bigram += count(&by_bigrams, true);
        found_jieba += count(&by_jieba, true);
        false_bigram += count(&by_bigrams, false);
        false_jieba += count(&by_jieba, false);
        rows.push(json!({
            "query": query,
            "relevant": truth_count,
            "bigrams_found": count(&by_bigrams, true),
            "bigrams_wrong": count(&by_bigrams, false),
            "jieba_words": words,
            "jieba_found": count(&by_jieba, true),
            "jieba_wrong": count(&by_jieba, false),
        }));
    }
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let report = json!({
        "listings": LISTINGS.len(),
        "queries": QUERIES.len(),
        "relevant": relevant,
        "bigrams": { "recall": ratio(found_bigram, relevant),
                     "precision": ratio(found_bigram, found_bigram + false_bigram) },
        "jieba": { "recall": ratio(found_jieba, relevant),
                   "precision": ratio(found_jieba, found_jieba + false_jieba) },
        "per_query": rows,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
}
